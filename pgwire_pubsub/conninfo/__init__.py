"""Connection options: libpq's keywords, connection strings, the service file and the
password file, resolved into the parameters a connection uses (see ``_params``)."""

from ._params import SSLMODES, ConnParams, HostSpec, RequireAuth, make_params, parse_dsn

__all__ = ["SSLMODES", "ConnParams", "HostSpec", "RequireAuth", "make_params", "parse_dsn"]
