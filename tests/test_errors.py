"""The exception hierarchy and the mapping of SQLSTATE codes to exceptions."""

from __future__ import annotations

from typing import Type

import pytest

import pgwire_pubsub
from pgwire_pubsub import errors
from pgwire_pubsub.errors import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    ProtocolViolation,
    QueryCanceled,
    Warning,
    error_from_fields,
)


@pytest.mark.parametrize(
    ("sqlstate", "cls"),
    [
        ("42601", ProgrammingError),  # syntax_error
        ("42P01", ProgrammingError),  # undefined_table
        ("42501", ProgrammingError),  # insufficient_privilege
        ("23505", IntegrityError),  # unique_violation
        ("23503", IntegrityError),  # foreign_key_violation
        ("22012", DataError),  # division_by_zero
        ("22P02", DataError),  # invalid_text_representation
        ("08006", OperationalError),  # connection_failure
        ("08P01", OperationalError),  # protocol_violation
        ("57P01", OperationalError),  # admin_shutdown
        ("57P03", OperationalError),  # cannot_connect_now
        ("28P01", OperationalError),  # invalid_password
        ("53300", OperationalError),  # too_many_connections
        ("40001", OperationalError),  # serialization_failure
        ("57014", QueryCanceled),  # query_canceled
        ("XX000", InternalError),  # internal_error
        ("25P02", InternalError),  # in_failed_sql_transaction
        ("P0001", InternalError),  # raise_exception
        ("0A000", NotSupportedError),  # feature_not_supported
        ("3D000", ProgrammingError),  # invalid_catalog_name
        ("ZZ999", DatabaseError),  # unknown class
        ("", DatabaseError),
    ],
)
def test_sqlstate_classes(sqlstate: str, cls: Type[DatabaseError]) -> None:
    exc = error_from_fields({"S": "ERROR", "C": sqlstate, "M": "boom"})
    assert type(exc) is cls
    assert exc.sqlstate == sqlstate


def test_missing_sqlstate() -> None:
    exc = error_from_fields({"M": "no code"})
    assert type(exc) is DatabaseError
    assert exc.sqlstate is None
    assert exc.pgcode is None
    assert str(exc) == "no code"


def test_query_canceled_is_operational() -> None:
    assert issubclass(QueryCanceled, OperationalError)
    assert isinstance(error_from_fields({"C": "57014"}), OperationalError)


FIELDS = {
    "S": "ERREUR",
    "V": "ERROR",
    "C": "23505",
    "M": 'duplicate key value violates unique constraint "t_pkey"',
    "D": "Key (id)=(1) already exists.",
    "H": "Use another id.",
    "s": "public",
    "t": "t",
    "n": "t_pkey",
}


def test_attributes() -> None:
    exc = error_from_fields(FIELDS)
    assert isinstance(exc, IntegrityError)
    assert exc.sqlstate == "23505"
    assert exc.pgcode == "23505"
    assert exc.severity == "ERROR"  # the untranslated V wins over the localized S
    assert exc.message == 'duplicate key value violates unique constraint "t_pkey"'
    assert exc.detail == "Key (id)=(1) already exists."
    assert exc.hint == "Use another id."
    assert exc.fields == FIELDS
    assert exc.fields["n"] == "t_pkey"


def test_fields_are_a_copy() -> None:
    fields = {"C": "42601", "M": "x"}
    exc = error_from_fields(fields)
    fields["C"] = "00000"
    assert exc.sqlstate == "42601"


def test_str_carries_sqlstate_detail_and_hint() -> None:
    text = str(error_from_fields(FIELDS))
    assert text == (
        'duplicate key value violates unique constraint "t_pkey" (SQLSTATE 23505)\n'
        "DETAIL: Key (id)=(1) already exists.\n"
        "HINT: Use another id."
    )


def test_pgerror_is_psycopg2s_text() -> None:
    assert error_from_fields(FIELDS).pgerror == (
        'ERROR:  duplicate key value violates unique constraint "t_pkey"\n'
        "DETAIL:  Key (id)=(1) already exists.\n"
        "HINT:  Use another id.\n"
    )
    assert error_from_fields({"S": "FATAL", "C": "57P01", "M": "bye"}).pgerror == "FATAL:  bye\n"


def test_severity_falls_back_to_s() -> None:
    assert error_from_fields({"S": "FATAL", "M": "x"}).severity == "FATAL"
    assert error_from_fields({"M": "x"}).severity is None


def test_missing_message() -> None:
    exc = error_from_fields({"C": "XX000"})
    assert "unknown server error" in str(exc)
    assert exc.detail is None
    assert exc.hint is None


def test_client_side_error_without_fields() -> None:
    exc = OperationalError("connection refused")
    assert exc.fields == {}
    assert exc.sqlstate is None
    assert exc.pgcode is None
    assert exc.severity is None
    assert exc.message == "connection refused"
    assert exc.pgerror is None
    assert str(exc) == "connection refused"


def test_protocol_violation_is_an_operational_error() -> None:
    assert issubclass(ProtocolViolation, OperationalError)
    exc = ProtocolViolation("bad bytes")
    assert isinstance(exc, DatabaseError)
    assert isinstance(exc, Error)
    assert exc.sqlstate is None


@pytest.mark.parametrize(
    "cls",
    [
        DataError,
        OperationalError,
        IntegrityError,
        InternalError,
        ProgrammingError,
        NotSupportedError,
    ],
)
def test_dbapi_database_errors(cls: Type[Exception]) -> None:
    assert issubclass(cls, DatabaseError)
    assert issubclass(cls, Error)
    assert issubclass(cls, Exception)


def test_dbapi_hierarchy() -> None:
    # PEP 249: Warning and Error derive from Exception; InterfaceError and DatabaseError
    # from Error.
    assert Warning.__bases__ == (Exception,)
    assert Error.__bases__ == (Exception,)
    assert InterfaceError.__bases__ == (Error,)
    assert DatabaseError.__bases__ == (Error,)
    assert not issubclass(Warning, Error)
    assert not issubclass(InterfaceError, DatabaseError)
    for cls in (DataError, OperationalError, IntegrityError, InternalError, ProgrammingError,
                NotSupportedError):
        assert cls.__bases__ == (DatabaseError,)


@pytest.mark.parametrize(
    "name",
    [
        "Warning",
        "Error",
        "InterfaceError",
        "DatabaseError",
        "DataError",
        "OperationalError",
        "IntegrityError",
        "InternalError",
        "ProgrammingError",
        "NotSupportedError",
        "QueryCanceled",
        "ProtocolViolation",
    ],
)
def test_names_exported_from_the_package(name: str) -> None:
    assert getattr(pgwire_pubsub, name) is getattr(errors, name)
    assert getattr(errors, name).__name__ == name
