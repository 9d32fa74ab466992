"""The SQL the fake backend understands: LISTEN/NOTIFY, transactions and a few SELECTs.

``statements(sql)`` cuts a query string into statements and recognises each one;
anything else becomes ``Unsupported`` (SQLSTATE 0A000, or 42601 for what does
not even tokenize).  Parameters (``$1``) stay ``Param`` placeholders until a
Bind gives them values; string literals follow ``standard_conforming_strings =
on`` (``E'...'`` for backslash escapes).
"""

from __future__ import annotations

import re
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

BOOL, INT8, INT4, TEXT, FLOAT8, VOID = 16, 20, 23, 25, 701, 2278


class Param(NamedTuple):
    number: int  # $1 is 1


Value = Union[str, Param, None]  # a literal string, a parameter, or NULL


class Statement(NamedTuple):
    """``kind`` is listen, unlisten, notify, select_notify, begin, commit, rollback,
    select, show, empty or unsupported; ``args`` depend on it (see ``_recognise``)."""

    kind: str
    args: Tuple[object, ...] = ()
    text: str = ""


class Column(NamedTuple):
    name: str
    type_oid: int


_TOKEN = re.compile(
    r"""(?P<space>\s+|--[^\n]*|/\*.*?\*/)
    |(?P<estring>[eE]'(?:[^'\\]|\\.|'')*')
    |(?P<string>'(?:[^']|'')*')
    |(?P<qident>"(?:[^"]|"")*")
    |(?P<param>\$[0-9]+)
    |(?P<number>[0-9]+)
    |(?P<word>[^\W0-9]\w*)
    |(?P<op>::|[(),;*.\[\]])""",
    re.S | re.X,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
Token = Tuple[str, str]


class _SyntaxError(Exception):
    pass


def tokens(sql: str) -> List[Tuple[str, str, int, int]]:
    """(kind, text, start, end) of every token; strings and identifiers unquoted."""
    out: List[Tuple[str, str, int, int]] = []
    pos = 0
    while pos < len(sql):
        match = _TOKEN.match(sql, pos)
        if match is None:
            raise _SyntaxError(f"syntax error at or near {sql[pos:pos + 10]!r}")
        kind, text, start = match.lastgroup or "", match.group(), pos
        pos = match.end()
        if kind == "space":
            continue
        if kind == "word":
            text = text.lower()  # unquoted identifiers and keywords fold to lower case
        elif kind == "qident":
            kind, text = "word", text[1:-1].replace('""', '"')
        elif kind == "string":
            text = text[1:-1].replace("''", "'")
        elif kind == "estring":
            kind = "string"
            text = re.sub(r"''|\\(.)", _unescape, text[2:-1], flags=re.S)
        out.append((kind, text, start, pos))
    return out


def _unescape(match: re.Match[str]) -> str:
    char = match.group(1)
    return "'" if char is None else _ESCAPES.get(char, char)


def statements(sql: str) -> List[Statement]:
    """The statements of one query string, in order (none for an empty string)."""
    try:
        found = tokens(sql)
    except _SyntaxError as exc:
        return [Statement("unsupported", ("42601", str(exc)), sql)]
    out: List[Statement] = []
    current: List[Token] = []
    start = 0
    for kind, text, begin, end in [*found, ("op", ";", len(sql), len(sql))]:
        if (kind, text) == ("op", ";"):
            if current:
                out.append(_recognise(current, sql[start:begin].strip()))
            current = []
            start = end
        else:
            current.append((kind, text))
    return out


def _words(toks: Sequence[Token]) -> List[str]:
    return [text if kind in ("word", "op") else f"<{kind}>" for kind, text in toks]


def _recognise(toks: List[Token], text: str) -> Statement:
    words = _words(toks)
    head = words[0]
    if head in ("listen", "unlisten", "notify"):
        return _listen_notify(head, toks, text)
    if head in ("begin", "start") and (head == "begin" or words[1:2] == ["transaction"]):
        return Statement("begin", (), text)
    if head in ("commit", "end") and words[1:] in ([], ["work"], ["transaction"]):
        return Statement("commit", (), text)
    if head in ("rollback", "abort") and words[1:] in ([], ["work"], ["transaction"]):
        return Statement("rollback", (), text)
    if head == "show" and len(toks) == 2 and toks[1][0] == "word":
        return Statement("show", (toks[1][1],), text)
    if head == "select":
        return _select(toks[1:], text)
    return unsupported(text)


def unsupported(text: str) -> Statement:
    return Statement("unsupported", (
        "0A000", f"the fake backend does not support this statement: {text[:200]}"), text)


def _listen_notify(head: str, toks: List[Token], text: str) -> Statement:
    rest = toks[1:]
    if head == "unlisten" and rest == [("op", "*")]:
        return Statement("unlisten", (None,), text)
    if not rest or rest[0][0] != "word":
        return Statement("unsupported", ("42601", f"syntax error in {text[:200]}"), text)
    channel = rest[0][1]
    if head != "notify" and len(rest) == 1:
        return Statement(head, (channel,), text)
    if head == "notify" and len(rest) == 1:
        return Statement("notify", (channel, ""), text)
    if head == "notify" and len(rest) == 3 and rest[1] == ("op", ",") and rest[2][0] == "string":
        return Statement("notify", (channel, rest[2][1]), text)
    return Statement("unsupported", ("42601", f"syntax error in {text[:200]}"), text)


_FUNCTIONS = {  # a function of no arguments: its column's type
    "pg_listening_channels": TEXT,
    "pg_is_in_recovery": BOOL,
    "pg_notification_queue_usage": FLOAT8,
    "pg_backend_pid": INT4,
}


def _select(toks: List[Token], text: str) -> Statement:
    """SELECT of one item: an integer, pg_notify(a, b) or a function of _FUNCTIONS."""
    toks, alias = _alias(toks)
    if len(toks) >= 2 and toks[0] == ("word", "pg_catalog") and toks[1] == ("op", "."):
        toks = toks[2:]
    if len(toks) == 1 and toks[0][0] == "number":
        return Statement("select", ("value", Column(alias or "?column?", INT4),
                                    int(toks[0][1])), text)
    if not toks or toks[0][0] != "word" or toks[1:2] != [("op", "(")] or toks[-1] != ("op", ")"):
        return unsupported(text)
    name, inner = toks[0][1], toks[2:-1]
    if name in _FUNCTIONS and not inner:
        return Statement("select", (name, Column(alias or name, _FUNCTIONS[name])), text)
    if name == "pg_notify":
        values = _arguments(inner)
        if values is not None and len(values) == 2:
            return Statement("select_notify", (Column(alias or name, VOID), *values), text)
    return unsupported(text)


def _alias(toks: List[Token]) -> Tuple[List[Token], Optional[str]]:
    if len(toks) >= 3 and toks[-2] == ("word", "as") and toks[-1][0] == "word":
        return toks[:-2], toks[-1][1]
    return toks, None


def _arguments(toks: List[Token]) -> Optional[List[Value]]:
    """Comma-separated values (a string, $n or NULL, each maybe with a ``::type`` cast)."""
    values: List[Value] = []
    pos = 0
    while pos < len(toks):
        kind, text = toks[pos]
        if kind == "string":
            values.append(text)
        elif kind == "param":
            values.append(Param(int(text[1:])))
        elif (kind, text) == ("word", "null"):
            values.append(None)
        else:
            return None
        pos += 1
        if toks[pos : pos + 1] == [("op", "::")]:  # a cast, to a type maybe an array
            pos += 2
            while toks[pos : pos + 1] in ([("op", "[")], [("op", "]")]):
                pos += 1
        if pos < len(toks):
            if toks[pos] != ("op", ","):
                return None
            pos += 1
    return values


def max_param(statement: Statement) -> int:
    """The highest $n a statement uses (its parameter count)."""
    return max((a.number for a in statement.args if isinstance(a, Param)), default=0)
