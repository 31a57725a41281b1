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


def _walk(value: Any, max_depth: int, max_values: int | None) -> Iterator[JsonValueProblem]:
    # depth first over one iterator per open container: the keys down to the current value are at
    # hand, so a path is built only for a problem, never copied along for every value
    iterators: list[Iterator[tuple[Any, Any]]] = [iter(((None, value),))]
    containers: list[Any] = [None]  # what iterators[i] walks: the value itself is in no container
    keys: list[Any] = []  # keys[i]: where containers[i + 1] is in containers[i]
    deep_found: set[JsonPath] = set()  # one problem per located deep part, not one per deep branch
    count = 0
    while iterators:
        for key, item in iterators[-1]:
            count += 1
            if max_values is not None and count > max_values:
                yield JsonValueProblem(
                    (),
                    f"holds more than {max_values:,} values",
                    "hold fewer values, or split them up",
                    "too_many_values",
                )
                return
            if isinstance(key, str) and not _unicode(key):
                yield JsonValueProblem(
                    _path(containers, keys, key),
                    "the key holds an unpaired UTF-16 surrogate escape",
                    _UNICODE,
                    "surrogate",
                )
            if isinstance(item, float):
                if not math.isfinite(item):
                    name = "NaN" if math.isnan(item) else ("Infinity" if item > 0 else "-Infinity")
                    yield JsonValueProblem(
                        _path(containers, keys, key),
                        f"{name} is not a JSON number",
                        "write a finite number, or quote it to keep it as text",
                        "non_finite",
                    )
            elif isinstance(item, str):
                if not _unicode(item):
                    yield JsonValueProblem(
                        _path(containers, keys, key),
                        "the string holds an unpaired UTF-16 surrogate escape (e.g. `\\ud800`)",
                        _UNICODE,
                        "surrogate",
                    )
            elif isinstance(item, dict | list) and item:
                if len(iterators) > max_depth:  # what it holds is nested too deeply: not walked
                    where = _path(containers, keys, key, limit=DEEP_PATH_PARTS)
                    if len(where) < DEEP_PATH_PARTS:
                        where = (*where, _shown(next(iter(item))) if isinstance(item, dict) else 0)
                    if where not in deep_found:
                        deep_found.add(where)
                        yield JsonValueProblem(
                            where, f"nested more than {max_depth} levels deep", "flatten it", "too_deep"
                        )
                    continue
                keys.append(key)
                containers.append(item)
                iterators.append(iter(item.items()) if isinstance(item, dict) else enumerate(item))
                break
        else:
            iterators.pop()
            containers.pop()
            if keys:
                keys.pop()


def _path(containers: list[Any], keys: list[Any], key: Any, limit: int | None = None) -> JsonPath:
    """The path to `key` in the innermost container, each part as its container reads it (a number
    or boolean key of a YAML mapping as text, not as a list index); with `limit`, only that many of
    its first parts, without building the rest."""
    length = len(keys) if limit is None else min(len(keys), limit)
    parts: list[int | str] = []
    for level in range(1, length + 1):
        part = keys[level] if level < len(keys) else key
        parts.append(part if isinstance(containers[level], list) else _shown(part))
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
