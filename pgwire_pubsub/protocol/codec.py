"""Typed messages to bytes and back, in both directions.

``build`` encodes any message, backend (``messages``) or frontend
(``frontend_messages``), through the encoders of ``backend.py`` and
``frontend.py``; ``parse_backend`` and ``parse_frontend`` decode exactly one
whole message.  ``parse_*(build(message)) == message`` for every message.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Union

from ..errors import ProtocolViolation
from . import backend, frontend
from . import frontend_messages as f
from . import messages as m
from .decoder import Decoder
from .frontend_decoder import FrontendDecoder

Message = Union[m.BackendMessage, f.FrontendMessage]

_KNOWN_AUTH_CODES = (0, 3, 5, 10, 11, 12)


def _unsupported(message: m.AuthenticationUnsupported) -> bytes:
    if message.code in _KNOWN_AUTH_CODES:
        raise ValueError(f"authentication code {message.code} has a message type of its own")
    return backend.authentication(message.code)


_BUILDERS: Dict[type, Callable[[Any], bytes]] = {
    # backend messages
    m.Notify: lambda x: backend.notification_response(x.pid, x.channel, x.payload),
    m.AuthenticationOk: lambda x: backend.authentication_ok(),
    m.AuthenticationCleartextPassword: lambda x: backend.authentication_cleartext_password(),
    m.AuthenticationMD5Password: lambda x: backend.authentication_md5_password(x.salt),
    m.AuthenticationSASL: lambda x: backend.authentication_sasl(x.mechanisms),
    m.AuthenticationSASLContinue: lambda x: backend.authentication_sasl_continue(x.data),
    m.AuthenticationSASLFinal: lambda x: backend.authentication_sasl_final(x.data),
    m.AuthenticationUnsupported: _unsupported,
    m.ParameterStatus: lambda x: backend.parameter_status(x.name, x.value),
    m.BackendKeyData: lambda x: backend.backend_key_data(x.pid, x.secret_key),
    m.ReadyForQuery: lambda x: backend.ready_for_query(x.status),
    m.RowDescription: lambda x: backend.row_description(x.names),
    m.DataRow: lambda x: backend.data_row(x.values),
    m.CommandComplete: lambda x: backend.command_complete(x.tag),
    m.EmptyQueryResponse: lambda x: backend.empty_query_response(),
    m.ErrorResponse: lambda x: backend.error_response(x.fields),
    m.NoticeResponse: lambda x: backend.notice_response(x.fields),
    m.NegotiateProtocolVersion: lambda x: backend.negotiate_protocol_version(
        x.version, x.unrecognized),
    m.ParseComplete: lambda x: backend.parse_complete(),
    m.BindComplete: lambda x: backend.bind_complete(),
    m.CloseComplete: lambda x: backend.close_complete(),
    m.NoData: lambda x: backend.no_data(),
    m.ParameterDescription: lambda x: backend.parameter_description(x.type_oids),
    m.PortalSuspended: lambda x: backend.portal_suspended(),
    # frontend messages
    f.StartupMessage: lambda x: frontend.startup_message(
        x.parameters, (x.protocol_version >> 16, x.protocol_version & 0xFFFF)),
    f.SSLRequest: lambda x: frontend.ssl_request(),
    f.GSSENCRequest: lambda x: frontend.gssenc_request(),
    f.CancelRequest: lambda x: frontend.cancel_request(x.pid, x.secret_key),
    f.PasswordMessage: lambda x: frontend.password_message(x.password),
    f.SASLInitialResponse: lambda x: frontend.sasl_initial_response(x.mechanism, x.data),
    f.SASLResponse: lambda x: frontend.sasl_response(x.data),
    f.Query: lambda x: frontend.query(x.sql),
    f.Parse: lambda x: frontend.parse(x.statement, x.sql, x.type_oids),
    f.Bind: lambda x: frontend.bind_values(
        x.portal, x.statement, x.params, x.param_formats, x.result_formats),
    f.Describe: lambda x: frontend.describe(x.kind, x.name),
    f.Execute: lambda x: frontend.execute(x.portal, x.max_rows),
    f.Close: lambda x: frontend.close(x.kind, x.name),
    f.Flush: lambda x: frontend.flush(),
    f.Sync: lambda x: frontend.sync(),
    f.Terminate: lambda x: frontend.terminate(),
}


def build(message: Message) -> bytes:
    """The bytes of ``message``, a backend or a frontend message.

    Raises ``ValueError`` for what the protocol cannot carry (a NUL inside a string,
    a salt that is not 4 bytes...).
    """
    try:
        encode = _BUILDERS[type(message)]
    except KeyError:
        raise TypeError(f"{type(message).__name__} is not a protocol message") from None
    return encode(message)


def parse_backend(data: bytes) -> m.BackendMessage:
    """The one backend message ``data`` holds; ``ProtocolViolation`` unless it is exactly
    one whole, well-formed message."""
    decoder = Decoder()
    messages = decoder.feed(data)
    decoder.check()
    _expect_one(len(messages), decoder.buffered)
    return messages[0]


def parse_frontend(data: bytes, password_type: f.PasswordKind = f.PasswordMessage
                   ) -> f.FrontendMessage:
    """The one frontend message ``data`` holds (a ``p`` message as ``password_type``);
    ``ProtocolViolation`` unless it is exactly one whole, well-formed message."""
    decoder = FrontendDecoder(password_type)
    messages = decoder.feed(data)
    decoder.check()
    _expect_one(len(messages), decoder.buffered)
    return messages[0]


def _expect_one(count: int, left: int) -> None:
    if count != 1 or left:
        raise ProtocolViolation(
            f"expected exactly one whole message, found {count} and {left} bytes more")
