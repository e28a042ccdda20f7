"""Canonical JSON for values that carry `Decimal` numbers exactly (never through float).

Sorted keys, no insignificant whitespace, numbers written as their decimal text. Used for queue
messages and for content hashes, where the same value must always give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any


def dumps(value: Any) -> str:
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def loads(text: str | bytes) -> Any:
    """Parse JSON keeping every non-integer number a `Decimal`; NaN and Infinity are refused."""
    return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)


def sha256_hex(value: Any) -> str:
    return hashlib.sha256(dumps(value).encode()).hexdigest()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def _write(value: Any, out: list[str]) -> None:
    if value is None or isinstance(value, bool):
        out.append(json.dumps(value))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("non-finite numbers cannot be written as JSON")
        out.append(str(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, dict):
        out.append("{")
        for index, key in enumerate(sorted(value)):
            if not isinstance(key, str):
                raise TypeError(f"object keys must be strings, not {type(key).__name__}")
            if index:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(
            f"{type(value).__name__} is not JSON-serializable here (floats are refused on purpose)"
        )
