"""The one walk over parsed data that finds what JSON cannot hold.

Python's json parser accepts `NaN`, `Infinity` and unpaired surrogate escapes (`"\\ud800"`); YAML
has `.nan` and `.inf`, and aliases that expand a few lines of text into billions of values; either
nests as deeply as its text does. None of that can be stored as UTF-8, written back as JSON or
serialized by the models, so both the loader (documents and catalogs read from text) and the API
(request bodies) walk what they parsed with `check_json_values` before anything else sees it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal

MAX_DEPTH = 100
"""How deeply objects and lists may nest: the models' serializer stops at ~250 levels, and no
catalog, workflow, schema or request body needs anywhere near this many."""

DEEP_PATH_PARTS = 3
"""A value nested too deeply is located by this many parts of its path: enough to find where the
deep part starts, where its whole path would be a hundred `[0]`s."""

JsonPath = tuple[int | str, ...]
ProblemCode = Literal["non_finite", "surrogate", "too_deep", "too_many_values"]

_UNICODE = "write valid Unicode text (a surrogate escape must be one of a high-low pair)"


@dataclass(frozen=True, slots=True)
class JsonValueProblem:
    """One part of the walked value that JSON cannot hold: where, what, and how to fix it."""

    path: JsonPath
    """Keys and list indexes from the walked value down to the part (`()` for the value itself); a
    key's unpaired surrogates are shown as escapes (`\\udc00`), so the path itself can be sent."""
    message: str
    """What is wrong, e.g. `NaN is not a JSON number`."""
    hint: str
    """How to fix it."""
    code: ProblemCode
    """Which kind of problem, for callers that word one kind their own way."""


def check_json_values(
    value: Any, *, first: bool = False, max_depth: int = MAX_DEPTH, max_values: int | None = None
) -> list[JsonValueProblem]:
    """Every part of `value` (parsed JSON or YAML) that JSON cannot hold, in document order:
    non-finite floats, strings and keys with unpaired surrogates, and values nested more than
    `max_depth` levels below `value` (those are not walked further). `first` stops at the first
    problem. `max_values` bounds the walk: when it would visit more values than that (an aliased
    YAML value counts each time it is used; data that contains itself never ends), it stops with a
    `too_many_values` problem located at the value itself."""
    walk = _walk(value, max_depth, max_values)
    return list(islice(walk, 1) if first else walk)


# a stack entry is (depth, value, key or index, parent entry, anchor): a path is built from the parent
# links only for a problem, so a walk over n values costs O(n) however deep they nest. The anchor is
# the ancestor at depth DEEP_PATH_PARTS (None above it): the deep parts below one anchor share their
# location, which is then built once, not once for each of what may be a million deep values.
_Entry = tuple[int, Any, Any, Any, Any]


def _walk(value: Any, max_depth: int, max_values: int | None) -> Iterator[JsonValueProblem]:
    stack: list[_Entry] = [(0, value, None, None, None)]
    deep_anchors: dict[int, _Entry] = {}  # by id, holding each anchor so that its id is not reused
    count = 0
    while stack:
        entry = stack.pop()
        depth, item = entry[0], entry[1]
        count += 1
        if max_values is not None and count > max_values:
            yield JsonValueProblem(
                (),
                f"holds more than {max_values:,} values",
                "hold fewer values, or split them up",
                "too_many_values",
            )
            return
        if isinstance(item, float):
            if not math.isfinite(item):
                name = "NaN" if math.isnan(item) else ("Infinity" if item > 0 else "-Infinity")
                yield JsonValueProblem(
                    _path(entry),
                    f"{name} is not a JSON number",
                    "write a finite number, or quote it to keep it as text",
                    "non_finite",
                )
        elif isinstance(item, str):
            if not _unicode(item):
                yield JsonValueProblem(
                    _path(entry),
                    "the string holds an unpaired UTF-16 surrogate escape (e.g. `\\ud800`)",
                    _UNICODE,
                    "surrogate",
                )
        elif isinstance(item, dict | list):
            below = depth + 1
            anchor = entry if depth == DEEP_PATH_PARTS else entry[4]
            if isinstance(item, dict):
                for key in item:
                    if isinstance(key, str) and not _unicode(key):
                        yield JsonValueProblem(
                            (*_path(entry), _shown(key)),
                            "the key holds an unpaired UTF-16 surrogate escape",
                            _UNICODE,
                            "surrogate",
                        )
            if below > max_depth:
                # what it holds is too deep, and not walked: one problem where the deep part starts
                if item and (anchor is None or id(anchor) not in deep_anchors):
                    if anchor is not None:
                        deep_anchors[id(anchor)] = anchor
                    where = _path(anchor) if anchor is not None else (*_path(entry), _first_part(item))
                    yield JsonValueProblem(
                        where[:DEEP_PATH_PARTS],
                        f"nested more than {max_depth} levels deep",
                        "flatten it",
                        "too_deep",
                    )
            elif isinstance(item, dict):
                # pushed last to first, so that they are walked (and reported) in document order
                stack.extend((below, item[key], key, entry, anchor) for key in reversed(item))
            else:
                stack.extend(
                    (below, item[index], index, entry, anchor) for index in range(len(item) - 1, -1, -1)
                )


def _first_part(item: dict[Any, Any] | list[Any]) -> int | str:
    return _shown(next(iter(item))) if isinstance(item, dict) else 0


def _path(entry: _Entry) -> JsonPath:
    parts: list[int | str] = []
    while entry[3] is not None:
        key, parent = entry[2], entry[3]
        # YAML keys may be numbers or booleans: shown as text, so they do not read as list indexes
        parts.append(key if isinstance(parent[1], list) else _shown(key))
        entry = parent
    parts.reverse()
    return tuple(parts)


def _shown(key: Any) -> str:
    text = key if isinstance(key, str) else str(key)
    return text if _unicode(text) else text.encode("utf-8", "backslashreplace").decode()


def _unicode(text: str) -> bool:
    """Whether `text` can be written as UTF-8 (it cannot while it holds an unpaired surrogate)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
