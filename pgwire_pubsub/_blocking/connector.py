"""Opening a session as libpq does: every host and address in turn, TLS per sslmode,
authentication, and the target_session_attrs check.

``open_session`` returns a ready ``SocketIO`` and ``Machine``; when every
candidate fails, the ``OperationalError`` lists what each one answered.
"""

from __future__ import annotations

import contextlib
import random
import socket
import ssl
import time
from typing import List, Optional, Tuple

from .. import tls
from ..conninfo import ConnParams, HostSpec
from ..errors import Error, OperationalError
from ..protocol import steps
from ..protocol.auth import Authenticator
from ..protocol.machine import Machine
from .socketio import SocketIO, remaining

Address = Tuple[int, Tuple[object, ...]]  # (family, sockaddr)


def open_session(params: ConnParams) -> Tuple[SocketIO, Machine]:
    hosts = list(params.hosts)
    shuffle = params.load_balance_hosts == "random"
    if shuffle:
        random.shuffle(hosts)
    target = params.target_session_attrs
    passes = ("standby", "any") if target == "prefer-standby" else (target,)
    failures: List[OperationalError] = []
    for wanted in passes:
        for host in hosts:
            try:
                addresses = _addresses(host, shuffle)
            except OperationalError as exc:
                failures.append(exc)
                continue
            for address in addresses:
                try:
                    return _start(params, host, address, wanted)
                except OperationalError as exc:
                    failures.append(exc)
    if len(failures) == 1:
        raise failures[0]
    last = failures[-1]
    raise OperationalError("\n".join(str(f) for f in failures), last.fields)


def _describe(host: HostSpec, address: Optional[Address]) -> str:
    if host.uses_unix_socket:
        return f'connection to server on socket "{host.unix_socket_path}" failed'
    shown = host.hostaddr or host.host
    if address is not None:
        ip = str(address[1][0])
        if ip != shown:
            return f'connection to server at "{shown}" ({ip}), port {host.port} failed'
    return f'connection to server at "{shown}", port {host.port} failed'


def _addresses(host: HostSpec, shuffle: bool) -> List[Optional[Address]]:
    if host.uses_unix_socket:
        return [None]
    name = host.hostaddr or host.host
    try:
        infos = socket.getaddrinfo(name, host.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise OperationalError(
            f'could not translate host name "{name}" to address: {exc}'
        ) from None
    found: List[Optional[Address]] = []
    for family, _, _, _, sockaddr in infos:
        candidate = (int(family), tuple(sockaddr))
        if candidate not in found:
            found.append(candidate)
    if shuffle:
        random.shuffle(found)
    return found


def _start(
    params: ConnParams, host: HostSpec, address: Optional[Address], wanted: str
) -> Tuple[SocketIO, Machine]:
    """One address, all the way to a session that meets ``wanted``; the error names it."""
    deadline = None
    if params.connect_timeout is not None:
        deadline = time.monotonic() + params.connect_timeout
    plan = tls.attempts(params.sslmode, host.uses_unix_socket)
    for number, want_tls in enumerate(plan, 1):
        transport: Optional[SocketIO] = None
        try:
            transport = SocketIO(_open_socket(params, host, address, deadline))
            proto = Machine()
            _secure_and_authenticate(params, host, transport, proto, want_tls, deadline)
            reason = transport.run(steps.session_mismatch(proto, wanted), proto, deadline)
            if reason is not None:
                _say_goodbye(transport, proto)
                raise OperationalError(reason)
            return transport, proto
        except (OSError, TimeoutError, Error) as exc:
            if transport is not None:
                transport.close()
            if number == len(plan) or not isinstance(exc, OperationalError):
                raise _located(exc, host, address) from None
    raise AssertionError("unreachable")


def _located(exc: BaseException, host: HostSpec, address: Optional[Address]) -> BaseException:
    """``exc`` with the failing host in front of its message (libpq's wording)."""
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return OperationalError(f"{_describe(host, address)}: timeout expired")
    if isinstance(exc, OSError):
        hint = "Is the server running and accepting connections?"
        return OperationalError(f"{_describe(host, address)}: {exc.strerror or exc}. {hint}")
    if not isinstance(exc, OperationalError):
        return exc  # the caller's mistake (a bad option, a bad file): not about this host
    located = type(exc)(f"{_describe(host, address)}: {exc}", exc.fields)
    return located


def _open_socket(
    params: ConnParams, host: HostSpec, address: Optional[Address], deadline: Optional[float]
) -> socket.socket:
    if address is None:
        path = host.unix_socket_path
        if path.startswith("@"):  # Linux abstract namespace
            path = "\0" + path[1:]
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: object = path
    else:
        family, sockaddr = address
        sock = socket.socket(family, socket.SOCK_STREAM)
        target = sockaddr
    try:
        sock.settimeout(remaining(deadline))
        sock.connect(target)  # type: ignore[arg-type]
        if address is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _set_keepalives(sock, params)
    except BaseException:
        sock.close()
        raise
    return sock


def _set_keepalives(sock: socket.socket, params: ConnParams) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1 if params.keepalives else 0)
    options = (
        ("TCP_KEEPIDLE", params.keepalives_idle),
        ("TCP_KEEPINTVL", params.keepalives_interval),
        ("TCP_KEEPCNT", params.keepalives_count),
        ("TCP_USER_TIMEOUT", params.tcp_user_timeout),
    )
    for name, value in options:
        option = getattr(socket, name, None)
        if option is not None and value:  # where the platform has it, as libpq
            sock.setsockopt(socket.IPPROTO_TCP, option, int(value))


def _secure_and_authenticate(
    params: ConnParams,
    host: HostSpec,
    transport: SocketIO,
    proto: Machine,
    want_tls: bool,
    deadline: Optional[float],
) -> None:
    binding = None
    if want_tls:
        direct = params.sslnegotiation == "direct"
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
            host=None if host.uses_unix_socket else host.host,
            sslsni=params.sslsni,
        )
        if direct or transport.run(steps.negotiate_tls(), proto, deadline):
            _wrap(params, host, transport, context, direct, deadline)
            binding = tls.channel_binding_data(transport.sock)  # type: ignore[arg-type]
        elif tls.tls_required(params.sslmode):
            raise OperationalError(
                f"server does not support SSL, but SSL was required (sslmode={params.sslmode})"
            )
    auth = Authenticator(
        params.user,
        params.password_for(host),
        channel_binding=params.channel_binding,
        require_auth=params.require_auth,
        tls_binding=binding,
    )
    transport.run(steps.startup(proto, params.startup_parameters(), auth), proto, deadline)


def _wrap(
    params: ConnParams,
    host: HostSpec,
    transport: SocketIO,
    context: ssl.SSLContext,
    direct: bool,
    deadline: Optional[float],
) -> None:
    name = None if host.uses_unix_socket else host.host
    sni = tls.server_hostname(name, params.sslsni)
    try:
        transport.sock.settimeout(remaining(deadline))
        transport.sock = context.wrap_socket(transport.sock, server_hostname=sni)
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
    sslsock = transport.sock
    if params.sslmode == "verify-full" and not context.check_hostname:
        tls.check_hostname(sslsock, name)
    if direct:
        tls.check_direct_alpn(sslsock)


def _say_goodbye(transport: SocketIO, proto: Machine) -> None:
    goodbye = proto.terminate()
    if goodbye:
        with contextlib.suppress(OSError, TimeoutError):
            transport.sendall(goodbye, time.monotonic() + 2.0)
    transport.close()
