"""The sans-IO protocol core: messages, decoder, encoders, state machine and steps.

Its codec is public, for anyone who speaks the protocol without this client
(servers, proxies, tests at the wire; see docs/protocol.md)::

    from pgwire_pubsub import protocol as pg

    pg.build(pg.Query("LISTEN jobs"))              # frontend message to bytes
    pg.Decoder().feed(data)                        # bytes from a server: backend messages
    pg.FrontendDecoder().feed(data)                # bytes from a client: frontend messages

The names below are loaded on first use, so that importing the client (which
needs only a few modules of the core) does not load the whole codec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._exports import lazy_exports

if TYPE_CHECKING:
    from .codec import Message as Message
    from .codec import build as build
    from .codec import parse_backend as parse_backend
    from .codec import parse_frontend as parse_frontend
    from .decoder import Decoder as Decoder
    from .frontend_decoder import FrontendDecoder as FrontendDecoder
    from .frontend_messages import Bind as Bind
    from .frontend_messages import CancelRequest as CancelRequest
    from .frontend_messages import Close as Close
    from .frontend_messages import Describe as Describe
    from .frontend_messages import Execute as Execute
    from .frontend_messages import Flush as Flush
    from .frontend_messages import FrontendMessage as FrontendMessage
    from .frontend_messages import GSSENCRequest as GSSENCRequest
    from .frontend_messages import Parse as Parse
    from .frontend_messages import PasswordMessage as PasswordMessage
    from .frontend_messages import Query as Query
    from .frontend_messages import SASLInitialResponse as SASLInitialResponse
    from .frontend_messages import SASLResponse as SASLResponse
    from .frontend_messages import SSLRequest as SSLRequest
    from .frontend_messages import StartupMessage as StartupMessage
    from .frontend_messages import Sync as Sync
    from .frontend_messages import Terminate as Terminate
    from .messages import AuthenticationCleartextPassword as AuthenticationCleartextPassword
    from .messages import AuthenticationMD5Password as AuthenticationMD5Password
    from .messages import AuthenticationOk as AuthenticationOk
    from .messages import AuthenticationSASL as AuthenticationSASL
    from .messages import AuthenticationSASLContinue as AuthenticationSASLContinue
    from .messages import AuthenticationSASLFinal as AuthenticationSASLFinal
    from .messages import AuthenticationUnsupported as AuthenticationUnsupported
    from .messages import BackendKeyData as BackendKeyData
    from .messages import BackendMessage as BackendMessage
    from .messages import BindComplete as BindComplete
    from .messages import CloseComplete as CloseComplete
    from .messages import CommandComplete as CommandComplete
    from .messages import DataRow as DataRow
    from .messages import EmptyQueryResponse as EmptyQueryResponse
    from .messages import ErrorResponse as ErrorResponse
    from .messages import NegotiateProtocolVersion as NegotiateProtocolVersion
    from .messages import NoData as NoData
    from .messages import NoticeResponse as NoticeResponse
    from .messages import Notify as Notify
    from .messages import ParameterDescription as ParameterDescription
    from .messages import ParameterStatus as ParameterStatus
    from .messages import ParseComplete as ParseComplete
    from .messages import PortalSuspended as PortalSuspended
    from .messages import ReadyForQuery as ReadyForQuery
    from .messages import RowDescription as RowDescription

_MODULES = {  # where each public name lives
    "messages": (
        "AuthenticationCleartextPassword", "AuthenticationMD5Password", "AuthenticationOk",
        "AuthenticationSASL", "AuthenticationSASLContinue", "AuthenticationSASLFinal",
        "AuthenticationUnsupported", "BackendKeyData", "BackendMessage", "BindComplete",
        "CloseComplete", "CommandComplete", "DataRow", "EmptyQueryResponse", "ErrorResponse",
        "NegotiateProtocolVersion", "NoData", "NoticeResponse", "Notify",
        "ParameterDescription", "ParameterStatus", "ParseComplete", "PortalSuspended",
        "ReadyForQuery", "RowDescription",
    ),
    "frontend_messages": (
        "Bind", "CancelRequest", "Close", "Describe", "Execute", "Flush", "FrontendMessage",
        "GSSENCRequest", "Parse", "PasswordMessage", "Query", "SASLInitialResponse",
        "SASLResponse", "SSLRequest", "StartupMessage", "Sync", "Terminate",
    ),
    "codec": ("Message", "build", "parse_backend", "parse_frontend"),
    "decoder": ("Decoder",),
    "frontend_decoder": ("FrontendDecoder",),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, globals(), _MODULES)
