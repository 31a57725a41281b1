"""`${{ ... }}` expressions, evaluated by Jinja2's immutable sandbox (never `eval`).

The syntax is Jinja's expression language with the GitHub Actions spellings people already write:
`&&`, `||`, `!`, `null`, `true`, `false` are accepted and mean `and`, `or`, `not`, `none`.

On top of the sandbox (which already blocks `__class__`-style attribute access), expressions are
checked statically before they run: no function or method calls, no private (`_`-prefixed)
attributes or keys, and arithmetic whose result would be huge is refused. Filters (`| length`,
`| default(...)`, `| lower`) stay available, since they are a fixed, reviewed set.

A string that is exactly one expression keeps the value's type (number, list, object); an
expression inside a longer string is rendered into it as text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from workflow.errors import ExpressionError, UnsafeExpression

EXPRESSION_RE = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
_WHOLE_RE = re.compile(r"^\s*\$\{\{(.*?)\}\}\s*$", re.DOTALL)
_MAX_SEQUENCE = 100_000
_MAX_INT_BITS = 4096
# GitHub-style operators → Jinja; applied outside string literals only
_OPERATOR_RE = re.compile(r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(&&)|(\|\|)|(!)(?!=)|\b(null)\b""")
# filters safe to expose: pure, bounded functions of their input
_SAFE_FILTERS = (
    "abs", "capitalize", "default", "d", "first", "float", "int", "join", "last", "length", "count",
    "lower", "upper", "max", "min", "replace", "reverse", "round", "sort", "string", "sum", "title",
    "trim", "unique", "list", "tojson", "truncate", "select", "reject", "selectattr", "rejectattr",
    "map", "dictsort", "items", "batch", "slice", "attr", "bool",
)


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        # run data is JSON: `steps.reserve.output.items` means the key, never dict.items
        if isinstance(obj, Mapping):
            if attribute in obj:
                return obj[attribute]
            return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > 64:
                raise SecurityError("exponent too large (limit 64)")
            result = left**right
        elif operator == "*":
            for a, b in ((left, right), (right, left)):
                if isinstance(a, str | list | tuple) and isinstance(b, int) and len(a) * b > _MAX_SEQUENCE:
                    raise SecurityError(f"result longer than {_MAX_SEQUENCE} items")
            result = left * right
        else:
            result = left + right
        if isinstance(result, int) and result.bit_length() > _MAX_INT_BITS:
            raise SecurityError("number too large")
        return result


def _bool_filter(value: Any) -> bool:
    return bool(value)


@lru_cache(maxsize=1)
def _environment() -> _Sandbox:
    env = _Sandbox(autoescape=False, undefined=StrictUndefined)
    env.globals.clear()  # no range, lipsum, cycler, joiner, namespace
    base = dict(env.filters)
    env.filters.clear()
    env.filters.update({k: base[k] for k in _SAFE_FILTERS if k in base})
    env.filters["bool"] = _bool_filter
    return env


def translate(source: str) -> str:
    """Rewrite GitHub-style operators into Jinja's, leaving string literals untouched."""

    def repl(match: re.Match[str]) -> str:
        if match.group(1):
            return match.group(1)
        if match.group(2):
            return " and "
        if match.group(3):
            return " or "
        if match.group(4):
            return " not "
        return "none"

    return _OPERATOR_RE.sub(repl, source)


@dataclass(frozen=True)
class Reference:
    """A read of run data found in an expression: `steps.<id>.output.a.b`, `inputs.x`, `item`."""

    root: str
    """`steps`, `inputs`, `item`, `secrets`, `with` or another name."""
    path: tuple[str, ...]
    """The attribute/key chain after the root, e.g. (`charge`, `output`, `amount`)."""


@dataclass(frozen=True)
class Expression:
    """One compiled `${{ ... }}` body."""

    source: str
    tree: nodes.Expr

    def references(self) -> list[Reference]:
        # memoized on the instance (compile_expression shares them): graphs and validators ask often
        cached: tuple[Reference, ...] | None = self.__dict__.get("_references")
        if cached is None:
            cached = tuple(_references(self.tree))
            object.__setattr__(self, "_references", cached)
        return list(cached)

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        try:
            value = _compiled(self.source)(**dict(context))
            if isinstance(value, Undefined):
                value._fail_with_undefined_error()
            return value
        except ExpressionError:
            raise
        except SecurityError as exc:
            raise UnsafeExpression(f"refused: {exc}", expression=self.source) from None
        except UndefinedError as exc:
            raise ExpressionError(f"`{self.source.strip()}`: {exc}", expression=self.source) from None
        except Exception as exc:  # any runtime fault in user data becomes a clean error
            raise ExpressionError(
                f"`{self.source.strip()}` failed: {type(exc).__name__}: {exc}", expression=self.source
            ) from None


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Any:
    env = _environment()
    return env.compile_expression(translate(source), undefined_to_none=False)


def _dotted(node: nodes.Node) -> Reference | None:
    chain: list[str] = []
    while True:
        if isinstance(node, nodes.Getattr):
            chain.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            chain.append(str(node.arg.value))
            node = node.node
        elif isinstance(node, nodes.Name):
            return Reference(node.name, tuple(reversed(chain)))
        else:
            return None


def _references(tree: nodes.Node) -> Iterator[Reference]:
    """The longest dotted reads in the tree (`steps.a.output.x`, not also `steps.a`)."""
    covered: set[int] = set()
    for node in [tree, *tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name))]:
        if id(node) in covered:
            continue
        ref = _dotted(node)
        if ref is None:
            continue
        # mark the inner nodes so they are not reported again as shorter references
        inner: nodes.Node = node
        while isinstance(inner, nodes.Getattr | nodes.Getitem):
            inner = inner.node
            covered.add(id(inner))
        yield ref


def _check_safe(tree: nodes.Node, source: str) -> None:
    for node in [tree, *tree.find_all((nodes.Call, nodes.Getattr, nodes.Getitem, nodes.Name))]:
        if isinstance(node, nodes.Call):
            raise UnsafeExpression(
                f"`{source.strip()}`: function and method calls are not allowed in expressions; "
                "use a filter instead (e.g. `x | length`)",
                expression=source,
            )
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            raise UnsafeExpression(
                f"`{source.strip()}`: private attribute `{node.attr}` is not allowed", expression=source
            )
        if (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
            and node.arg.value.startswith("_")
        ):
            raise UnsafeExpression(
                f"`{source.strip()}`: private key `{node.arg.value}` is not allowed", expression=source
            )
        if isinstance(node, nodes.Name) and node.name.startswith("_"):
            raise UnsafeExpression(f"`{source.strip()}`: private name `{node.name}` is not allowed",
                                   expression=source)


MAX_EXPRESSION_DEPTH = 64
"""How deeply an expression may nest; every walk over its tree (and the parser) recurses per level."""


def _depth(tree: nodes.Node) -> int:
    """The depth of a node tree, counted without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_EXPRESSION_DEPTH + 10:  # deep enough to answer; no need to go further
            stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return deepest


def _shortened(source: str) -> str:
    text = source.strip()
    return text if len(text) <= 60 else text[:40] + " … " + text[-15:]


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> Expression:
    """Parse and safety-check one expression body (the text between `${{` and `}}`)."""
    if not source.strip():
        raise ExpressionError("empty expression `${{ }}`; put a value between the braces", expression=source)
    env = _environment()
    too_deep = ExpressionError(f"`{_shortened(source)}` nests more than {MAX_EXPRESSION_DEPTH} levels deep "
                               "(parentheses, operators, attributes); split it up", expression=source)
    try:
        tree = env.parse("{{ " + translate(source) + " }}")
    except TemplateSyntaxError as exc:
        message = f"`{source.strip()}` does not parse: {exc.message}"
        raise ExpressionError(message, expression=source) from None
    except RecursionError:  # the parser recurses once per level
        raise too_deep from None
    if _depth(tree) > MAX_EXPRESSION_DEPTH + 3:  # Template → Output → Expr above the expression
        raise too_deep
    outputs = list(tree.find_all(nodes.Output))
    if len(outputs) != 1 or len(outputs[0].nodes) != 1 or not isinstance(outputs[0].nodes[0], nodes.Expr):
        raise ExpressionError(f"`{source.strip()}` is not a single expression", expression=source)
    expr = outputs[0].nodes[0]
    _check_safe(expr, source)
    return Expression(source=source, tree=expr)


def find_expressions(text: str) -> list[str]:
    """The bodies of all `${{ ... }}` in a string."""
    return [m.group(1) for m in EXPRESSION_RE.finditer(text)]


def whole_expression(text: str) -> str | None:
    """The body when the string is exactly one expression (so its value keeps its type)."""
    match = _WHOLE_RE.match(text)
    if match and "${{" not in match.group(1):
        return match.group(1)
    return None


def iter_strings(value: Any, location: str) -> Iterator[tuple[str, str]]:
    """Every string inside nested data, with its location (`with.items[0].name`)."""
    if isinstance(value, str):
        yield location, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from iter_strings(item, f"{location}.{key}" if location else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from iter_strings(item, f"{location}[{index}]")


def _to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def render_string(text: str, context: Mapping[str, Any]) -> Any:
    """Render one string: a whole expression keeps its type; embedded ones become text."""
    whole = whole_expression(text)
    if whole is not None:
        return compile_expression(whole).evaluate(context)
    if "${{" not in text:
        return text
    return EXPRESSION_RE.sub(lambda m: _to_text(compile_expression(m.group(1)).evaluate(context)), text)


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every expression inside nested data (dicts, lists, strings)."""
    if isinstance(value, str):
        return render_string(value, context)
    if isinstance(value, Mapping):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render(v, context) for v in value]
    return value


def evaluate_condition(text: str, context: Mapping[str, Any]) -> bool:
    """An `if:` value: `${{ expr }}` or a bare expression (as GitHub Actions allows)."""
    whole = whole_expression(text)
    body = whole if whole is not None else (text if "${{" not in text else None)
    value = compile_expression(body).evaluate(context) if body is not None else render_string(text, context)
    return bool(value)


def condition_body(text: str) -> str:
    """The expression body of an `if:` (with or without `${{ }}`)."""
    whole = whole_expression(text)
    return whole if whole is not None else text
