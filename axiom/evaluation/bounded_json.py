"""JSON from outside Axiom (an endpoint's reply, a responses-file or golden-set line) parsed with bounds, and
JSON written for other programs kept to the standard.

`loads_bounded` refuses, with `JSONBoundError` (a ValueError) saying which bound, a document

- nested deeper than MAX_DEPTH arrays/objects: checked by a pre-scan of the brackets outside strings before
  parsing (the C parser recurses once per level: 100,000 `[` would be a RecursionError),
- holding a number longer than MAX_NUMBER_CHARS characters (Python's int limit of 4,300 digits would be a
  ValueError from deep inside `json`; a 5,000-digit float would silently be infinity),
- longer than the caller's `max_bytes`.

The pre-scan is linear and runs in C (bytes.replace / re / translate, numpy for the running depth, a megabyte
at a time), so a 16 MiB document costs tens of milliseconds and a few copies of itself, never a Python loop
per byte. `dumps_finite` writes standard JSON: a NaN or infinite float becomes null (json.dumps would write
`NaN`).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

MAX_DEPTH = 64
MAX_NUMBER_CHARS = 100
MEBIBYTE = 1 << 20
_SCAN_BLOCK = MEBIBYTE
# after escaped quotes and backslashes are gone, a string has no quote inside
_STRING = re.compile(rb'"[^"]*"')
_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # open +1, close -1 (as int8)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


class JSONBoundError(ValueError):
    """A JSON document beyond a bound (too deep, a number too long, too large); the message says which."""


def size_text(n: int) -> str:
    """A byte count as people read it: `1 GiB`, `16 MiB`, `1.5 MiB`, `900 bytes`."""
    if n >= 1 << 30:
        return f"{n / (1 << 30):.4g} GiB"
    if n >= MEBIBYTE:
        return f"{n / MEBIBYTE:.4g} MiB"
    return f"{n / 1024:.4g} KiB" if n >= 1024 else f"{n} bytes"


def nesting_depth(data: bytes, limit: int = MAX_DEPTH) -> int:
    """The deepest array/object nesting of a JSON text (brackets inside strings do not count), scanning no
    further than the first point deeper than `limit` (then it returns that depth, limit + 1 or more)."""
    skeleton = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = _STRING.sub(b"", skeleton).translate(_STEP, _NOT_BRACKET)
    depth = deepest = 0
    for start in range(0, len(skeleton), _SCAN_BLOCK):
        steps = np.frombuffer(skeleton, dtype=np.int8, count=min(_SCAN_BLOCK, len(skeleton) - start),
                              offset=start)
        running = np.cumsum(steps, dtype=np.int64) + depth
        deepest = max(deepest, int(running.max()))
        if deepest > limit:
            return deepest
        depth = int(running[-1])
    return deepest


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise JSONBoundError(f"a number is {len(text)} characters long; the limit is {MAX_NUMBER_CHARS}")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise JSONBoundError(f"a number is {len(text)} characters long; the limit is {MAX_NUMBER_CHARS}")
    return float(text)


def loads_bounded(data: bytes | str, *, max_bytes: int | None = None) -> Any:  # boundary: JSON
    """The parsed JSON document. Raises JSONBoundError beyond a bound, json.JSONDecodeError (a ValueError) for
    text that is not JSON, UnicodeDecodeError (a ValueError) for bytes that are not UTF-8."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if max_bytes is not None and len(raw) > max_bytes:
        raise JSONBoundError(f"{len(raw):,} bytes long; the limit is {size_text(max_bytes)}")
    if nesting_depth(raw) > MAX_DEPTH:
        raise JSONBoundError(f"nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(data, parse_int=_int, parse_float=_float)
    except RecursionError:  # not reached below MAX_DEPTH; kept so no input can give a traceback
        raise JSONBoundError(f"nested deeper than {MAX_DEPTH} levels") from None


def finite_json(value: Any) -> Any:  # boundary: JSON values
    """`value` with every NaN or infinite float replaced by None (lists, tuples and dicts walked)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def dumps_finite(value: Any, **kwargs: Any) -> str:  # boundary: JSON values; json.dumps's keywords
    """Standard JSON (no NaN / Infinity: such numbers become null)."""
    return json.dumps(finite_json(value), allow_nan=False, **kwargs)
