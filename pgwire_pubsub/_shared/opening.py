"""Opening a session as libpq does: every host and address in turn, TLS per sslmode,
authentication, and the target_session_attrs check, as one procedure any driver runs.

``open_session`` returns an ``Opened``: the session's ``Machine`` and where it was
opened; the driver holds the stream it opened for the last ``Connect``.  When every
candidate fails, the ``OperationalError`` lists what each one answered.  ``cancel``
sends a CancelRequest to where a session was opened, the same way.
"""

from __future__ import annotations

import contextlib
import random
import socket
from typing import Any, Generator, List, NamedTuple, Optional, Tuple

from .. import tls
from ..conninfo import ConnParams, HostSpec
from ..errors import Error, OperationalError
from ..protocol import frontend, steps
from ..protocol.auth import Authenticator
from ..protocol.machine import Machine
from .requests import (
    Address,
    Connect,
    Deadline,
    Disconnect,
    Resolve,
    SocketOption,
    StartTLS,
)


class Opened(NamedTuple):
    """A session that is ready: its machine, and the host, address and TLS it used."""

    machine: Machine
    host: HostSpec
    address: Optional[Address]
    tls: bool


Opening = Generator[Any, Any, Opened]


def open_session(params: ConnParams, rng: Optional[random.Random] = None) -> Opening:
    shuffle = params.load_balance_hosts == "random"
    pick = rng or random
    hosts = list(params.hosts)
    if shuffle:
        pick.shuffle(hosts)
    target = params.target_session_attrs
    passes = ("standby", "any") if target == "prefer-standby" else (target,)
    failures: List[OperationalError] = []
    for wanted in passes:
        for host in hosts:
            try:
                addresses = yield from _addresses(host)
            except OperationalError as exc:
                failures.append(exc)
                continue
            if shuffle:
                pick.shuffle(addresses)
            for address in addresses:
                try:
                    return (yield from _start(params, host, address, wanted))
                except OperationalError as exc:
                    failures.append(exc)
    if len(failures) == 1:
        raise failures[0]
    raise OperationalError("\n".join(str(f) for f in failures), failures[-1].fields)


def _describe(host: HostSpec, address: Optional[Address]) -> str:
    if host.uses_unix_socket:
        return f'connection to server on socket "{host.unix_socket_path}" failed'
    shown = host.hostaddr or host.host
    if address is not None:
        ip = str(address[1][0])
        if ip != shown:
            return f'connection to server at "{shown}" ({ip}), port {host.port} failed'
    return f'connection to server at "{shown}", port {host.port} failed'


def _addresses(host: HostSpec) -> Generator[Any, Any, List[Optional[Address]]]:
    if host.uses_unix_socket:
        return [None]
    name = host.hostaddr or host.host
    try:
        infos = yield Resolve(name, host.port)
    except OSError as exc:
        raise OperationalError(
            f'could not translate host name "{name}" to address: {exc}'
        ) from None
    found: List[Optional[Address]] = []
    for family, sockaddr in infos:
        candidate = (int(family), tuple(sockaddr))
        if candidate not in found:
            found.append(candidate)
    return found


def _start(
    params: ConnParams, host: HostSpec, address: Optional[Address], wanted: str
) -> Opening:
    """One address, all the way to a session that meets ``wanted``; the error names it."""
    yield Deadline(params.connect_timeout)
    plan = tls.attempts(params.sslmode, host.uses_unix_socket)
    for number, want_tls in enumerate(plan, 1):
        try:
            machine = Machine()
            yield _connect(params, host, address, machine)
            binding = yield from _secure(params, host, machine, want_tls)
            auth = Authenticator(
                params.user,
                params.password_for(host),
                channel_binding=params.channel_binding,
                require_auth=params.require_auth,
                tls_binding=binding,
            )
            yield from steps.startup(machine, params.startup_parameters(), auth,
                                     params.max_protocol_version, params.min_protocol_version)
            reason = yield from steps.session_mismatch(machine, wanted)
            if reason is not None:
                with contextlib.suppress(OSError, TimeoutError):
                    yield machine.terminate()
                raise OperationalError(reason)
            yield Deadline(None)
            return Opened(machine, host, address, binding is not None)
        except (OSError, TimeoutError, Error) as exc:
            yield Disconnect()
            if number == len(plan) or not isinstance(exc, OperationalError):
                raise _located(exc, host, address) from None
    raise AssertionError("unreachable")


def _connect(
    params: ConnParams, host: HostSpec, address: Optional[Address], machine: Machine
) -> Connect:
    path = host.unix_socket_path if address is None else ""
    if path.startswith("@"):  # Linux abstract namespace
        path = "\0" + path[1:]
    options = () if address is None else socket_options(params)
    return Connect(address, path, options, machine)


def cancel(params: ConnParams, opened: Opened) -> Generator[Any, Any, None]:
    """A CancelRequest for ``opened``'s session, over a new connection to the same address,
    with TLS if the session used it, within ``connect_timeout``.  Waits until the server
    closes that connection, so that the request has been read when this returns."""
    yield Deadline(params.connect_timeout)
    machine = Machine()
    host = opened.host
    try:
        yield _connect(params, host, opened.address, machine)
        yield from _secure(params, host, machine, opened.tls)
        secret = opened.machine.secret_key
        if opened.machine.backend_pid is None or secret is None:
            raise OperationalError("cannot cancel: the server sent no cancel key for this "
                                   "session")
        yield frontend.cancel_request(opened.machine.backend_pid, secret)
        with contextlib.suppress(OperationalError):
            yield None  # the server says nothing and closes
    except GeneratorExit:
        raise
    except BaseException as exc:
        yield Disconnect()
        if isinstance(exc, (OSError, TimeoutError)):
            raise _located(exc, host, opened.address) from None
        raise
    yield Disconnect()


def _secure(
    params: ConnParams, host: HostSpec, machine: Machine, want_tls: bool
) -> Generator[Any, Any, Optional[Tuple[str, bytes]]]:
    """TLS for this attempt, when wanted and agreed; the channel binding data, or None."""
    if not want_tls:
        return None
    direct = params.sslnegotiation == "direct"
    name = None if host.uses_unix_socket else host.host
    context = tls.make_context(
        params.sslmode,
        params.sslrootcert,
        sslcert=params.sslcert,
        sslkey=params.sslkey,
        sslpassword=params.sslpassword,
        sslcrl=params.sslcrl,
        sslcrldir=params.sslcrldir,
        min_version=params.ssl_min_protocol_version,
        max_version=params.ssl_max_protocol_version,
        direct=direct,
        host=name,
        sslsni=params.sslsni,
    )
    if not direct and not (yield from steps.negotiate_tls(machine)):
        if tls.tls_required(params.sslmode):
            raise OperationalError(
                f"server does not support SSL, but SSL was required (sslmode={params.sslmode})"
            )
        return None
    try:
        sslobj = yield StartTLS(context, tls.server_hostname(name, params.sslsni))
    except (OSError, TimeoutError) as exc:
        if isinstance(exc, (TimeoutError, socket.timeout)):
            raise
        error = tls.handshake_error(
            exc,
            sslrootcert=params.sslrootcert,
            min_version=params.ssl_min_protocol_version,
            max_version=params.ssl_max_protocol_version,
        )
        if direct:
            error = OperationalError(
                f"{error}; direct TLS (sslnegotiation=direct) needs PostgreSQL 17 or newer: "
                "use sslnegotiation=postgres for older servers"
            )
        raise error from None
    if params.sslmode == "verify-full" and not context.check_hostname:
        tls.check_hostname(sslobj, name)
    if direct:
        tls.check_direct_alpn(sslobj)
    return tls.channel_binding_data(sslobj)


def _located(exc: BaseException, host: HostSpec, address: Optional[Address]) -> BaseException:
    """``exc`` with the failing host in front of its message (libpq's wording)."""
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return OperationalError(f"{_describe(host, address)}: timeout expired")
    if isinstance(exc, OSError):
        hint = "Is the server running and accepting connections?"
        return OperationalError(f"{_describe(host, address)}: {exc.strerror or exc}. {hint}")
    if not isinstance(exc, OperationalError):
        return exc  # the caller's mistake (a bad option, a bad file): not about this host
    return type(exc)(f"{_describe(host, address)}: {exc}", exc.fields)


def socket_options(params: ConnParams) -> Tuple[SocketOption, ...]:
    """TCP_NODELAY, and the keepalive settings where the platform has them, as libpq."""
    options: List[SocketOption] = [
        (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1 if params.keepalives else 0),
    ]
    for name, value in (
        ("TCP_KEEPIDLE", params.keepalives_idle),
        ("TCP_KEEPINTVL", params.keepalives_interval),
        ("TCP_KEEPCNT", params.keepalives_count),
        ("TCP_USER_TIMEOUT", params.tcp_user_timeout),
    ):
        option = getattr(socket, name, None)
        if option is not None and value:
            options.append((socket.IPPROTO_TCP, option, int(value)))
    return tuple(options)
