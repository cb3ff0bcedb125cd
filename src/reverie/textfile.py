"""One bounded reader for the structured text Reverie reads: looks and batches (TOML), manifests (JSON).

Whatever such a file holds, reading it ends in data or in one `ReverieError` line naming the file. Python's
own parsers do not promise that: they read any size, recurse once per level of nesting (100,000 ``[``
end in RecursionError), refuse integers of more than 4,300 digits with a bare ValueError and let TOML's
``nan``/``inf`` and JSON's ``NaN`` through. So here, in this order:

- the size is checked before reading (`format_size` words it: "10 MB; the limit is 64 KB");
- the bytes are UTF-8, with or without the byte-order mark some Windows editors write (the web page
  accepts it, so the command line does too), and hold no NUL byte;
- TOML's shape is scanned before parsing (strings and comments skipped): Python's TOML parser
  recurses once per nested array or table and takes time quadratic in a dotted key's length (a 64 KB
  ``a.a.a...`` key: 16 s). JSON's parser is linear and stops by itself at about a thousand levels;
- the parser's RecursionError and digit-limit ValueError become messages;
- the parsed data is walked, without recursion, for nesting deeper than `MAX_DEPTH` (what parsed may
  still be too deep for the code that reads it), integers beyond 64 bits, and, where asked, numbers
  that are not finite.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import tomllib
from typing import Any

from reverie.errors import ReverieError

KB, MB = 2**10, 2**20
MAX_DEPTH = 32
"""Levels of tables and arrays: a look uses 2, a batch 3, a manifest 4."""
MAX_INT_BITS = 64
"""Wider integers are no frame number, seed or count; they would not fit a C integer either."""


def format_size(n: int) -> str:
    """A size in the units a person reads: ``100 bytes``, ``1.5 KB``, ``10 MB``."""
    if n < KB:
        return f"{n} bytes"
    unit, scale = ("MB", MB) if n >= MB else ("KB", KB)
    return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"


def read_text(path: str | os.PathLike[str], what: str, fix: str, *, limit: int) -> str:
    """The text of a user's file, at most `limit` bytes of UTF-8 (a leading byte-order mark is dropped).

    what: the kind of file, for messages ("look file"); fix: what to do instead ("give a TOML look file").
    """
    label = f"{what} {path}"
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise ReverieError(f"{label} is a directory: {fix}")
        if not stat.S_ISREG(info.st_mode):  # a pipe or a device: reading could block or never end
            raise ReverieError(f"{label} is not a regular file: {fix}")
        _check_size(info.st_size, limit, label, fix)
        with open(path, "rb") as file:
            data = file.read(limit + 1)  # the file may have grown since stat
    except FileNotFoundError:
        raise ReverieError(f"{label} does not exist: check the path and the spelling") from None
    except OSError as err:
        raise ReverieError(f"cannot read {label}: {err.strerror or err}") from None
    return decode_text(data, label, fix, limit=limit)


def decode_text(data: bytes, label: str, fix: str, *, limit: int) -> str:
    """`data` (an upload, a file's bytes) as text, by the rules of `read_text`; label names it."""
    _check_size(len(data), limit, label, fix)
    binary = ReverieError(f"{label} is not a UTF-8 text file: {fix}")
    if b"\0" in data:  # valid UTF-8, but no text format here allows it
        raise binary
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise binary from None


def parse_toml(text: str, label: str, fix: str, *, finite: bool = True) -> dict[str, Any]:
    """TOML text as data; any problem is one line that starts with `label`."""
    _check_toml_shape(text, label, fix)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ReverieError(f"{label} is not valid TOML: {err}") from None
    except RecursionError:
        raise _too_deep(label, fix) from None
    except ValueError:  # tomllib lets int()'s digit limit through
        raise _too_long(label, fix) from None
    check_data(data, label, fix, finite=finite)
    return data


def parse_json(text: str, label: str, fix: str, *, finite: bool = True) -> Any:
    """JSON text as data; any problem is one line that starts with `label`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ReverieError(f"{label} is not valid JSON: {err}; {fix}") from None
    except RecursionError:
        raise _too_deep(label, fix) from None
    except ValueError:  # int()'s digit limit
        raise _too_long(label, fix) from None
    check_data(data, label, fix, finite=finite)
    return data


def load_toml(path: str | os.PathLike[str], what: str, fix: str, *, limit: int) -> dict[str, Any]:
    """A user's TOML file (`read_text`, then `parse_toml`); its numbers must be finite."""
    return parse_toml(read_text(path, what, fix, limit=limit), f"{what} {path}", fix)


def load_json(path: str | os.PathLike[str], what: str, fix: str, *, limit: int, finite: bool = True) -> Any:
    """A JSON file (`read_text`, then `parse_json`)."""
    return parse_json(read_text(path, what, fix, limit=limit), f"{what} {path}", fix, finite=finite)


def check_data(data: Any, label: str, fix: str, *, finite: bool = True) -> None:
    """Refuse nesting deeper than MAX_DEPTH, integers wider than 64 bits and (if `finite`) NaN or
    infinity, anywhere in parsed `data`. Iterative: deep data must not overflow this check either."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise _too_deep(label, fix)
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                inner = (
                    f"{where}[{key}]" if isinstance(value, list) else f"{where}.{key}" if where else str(key)
                )
                stack.append((item, inner, depth + 1))
        elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
            digits = int(value.bit_length() * math.log10(2)) + 1  # str() of it may be refused
            raise ReverieError(
                f"{label}: {_short(where)} is a number too large (about {digits} digits): "
                f"give one of at most {MAX_INT_BITS} bits"
            )
        elif finite and isinstance(value, float) and not math.isfinite(value):
            raise ReverieError(f"{label}: {_short(where)} is {value}: give a finite number")


# Strings and comments first (their brackets and dots are text), then the characters that nest: brackets,
# and the dots of a dotted key (anything else between two dots ends the key).
_TOML_TOKENS = re.compile(
    r'"""(?:\\.|[^\\])*?"""|\'\'\'.*?\'\'\'|"(?:\\.|[^"\\\n])*"|\'[^\'\n]*\'|#[^\n]*|[\[\]{}=,.\n]',
    re.DOTALL,
)


def _check_toml_shape(text: str, label: str, fix: str) -> None:
    """Nesting (brackets) and dotted keys deeper than MAX_DEPTH, found in one pass without parsing."""
    depth = dots = 0
    for match in _TOML_TOKENS.finditer(text):
        token = match[0]
        if len(token) != 1:  # a string or a comment
            continue
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth = max(0, depth - 1)
        dots = dots + 1 if token == "." else 0  # a float or a time has one
        if depth > MAX_DEPTH or dots >= MAX_DEPTH:
            raise _too_deep(label, fix)


def _short(where: str) -> str:
    """Where a value is, for a message: keys may be long too."""
    if not where:
        return "the value"
    return where if len(where) <= 80 else where[:77] + "..."


def _check_size(size: int, limit: int, label: str, fix: str) -> None:
    if size > limit:
        shown, most = format_size(size), format_size(limit)
        if shown == most:  # just over the limit rounds to it: bytes show the difference
            shown, most = f"{size:,} bytes", f"{limit:,} bytes"
        raise ReverieError(f"{label} is {shown}; the limit is {most}: {fix}")


def _too_deep(label: str, fix: str) -> ReverieError:
    return ReverieError(
        f"{label} nests values more than {MAX_DEPTH} levels deep (tables, objects or arrays): {fix}"
    )


def _too_long(label: str, fix: str) -> ReverieError:
    return ReverieError(f"{label} holds a number too long to read (over 4,300 digits): {fix}")
