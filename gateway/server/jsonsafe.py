"""JSON from clients, parsed with a nesting limit.

Python's json module recurses per nesting level: a body of 100,000 opening brackets raises
RecursionError (a 500 on REST, a silently dropped WebSocket). The nesting is measured first in
one linear pass, so such input is refused as bad JSON before json.loads sees it.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32  # the protocols' messages nest 3 levels deep


class JsonError(ValueError):
    """Not JSON, or nested deeper than allowed."""


def nesting(text: str) -> int:
    """The deepest bracket nesting of ``text`` outside strings."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_json(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` for client input: JsonError for bad or too deeply nested JSON."""
    if isinstance(text, bytes | bytearray):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonError("not UTF-8") from exc
    if nesting(text) > max_depth:
        raise JsonError(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise JsonError(str(exc)) from exc
