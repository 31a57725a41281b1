"""`${{ ... }}` expressions: typed values, text rendering, GitHub-style operators, the sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from workflow.errors import ExpressionError, UnsafeExpression
from workflow.expressions import (
    Reference,
    compile_expression,
    condition_body,
    evaluate_condition,
    find_expressions,
    iter_strings,
    render,
    render_string,
    translate,
    whole_expression,
)

CONTEXT: dict[str, Any] = {
    "inputs": {
        "seats": 120,
        "price": 9.5,
        "emails": ["a@x.io", "b@x.io"],
        "customer": {"name": "Acme", "tier": "gold"},
        "flag": False,
        "nothing": None,
        "items": [{"sku": "A1"}],
    },
    "steps": {
        "crm": {"output": {"account_id": "acc_1", "tags": ["new"]}, "status": "succeeded"},
        "charge": {"output": {"amount": 500}, "status": "failed"},
    },
}


def value(text: str, context: dict[str, Any] | None = None) -> Any:
    return render_string(text, CONTEXT if context is None else context)


# ----------------------------------------------------------------------------- values and text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${{ inputs.seats }}", 120),
        ("${{ inputs.price }}", 9.5),
        ("${{ inputs.emails }}", ["a@x.io", "b@x.io"]),
        ("${{ inputs.customer }}", {"name": "Acme", "tier": "gold"}),
        ("${{ inputs.flag }}", False),
        ("${{ inputs.nothing }}", None),
        ("  ${{ inputs.seats }}  ", 120),
        ("${{ steps.crm.output.tags[0] }}", "new"),
        ("${{ inputs['customer']['name'] }}", "Acme"),
        ("${{ inputs.seats * 2 + 1 }}", 241),
    ],
)
def test_a_whole_expression_keeps_its_type(text: str, expected: Any) -> None:
    result = value(text)
    assert result == expected
    assert type(result) is type(expected)


def test_embedded_expressions_render_into_text() -> None:
    text = ("${{ inputs.customer.name }} has ${{ inputs.seats }} seats, emails ${{ inputs.emails }}, "
            "meta ${{ inputs.customer }}, flag ${{ inputs.flag }}, nothing '${{ inputs.nothing }}'")
    assert value(text) == (
        'Acme has 120 seats, emails ["a@x.io","b@x.io"], meta {"name":"Acme","tier":"gold"}, '
        "flag false, nothing ''"
    )


def test_two_expressions_in_one_string_are_text() -> None:
    assert whole_expression("${{ inputs.seats }}${{ inputs.seats }}") is None
    assert value("${{ inputs.seats }}${{ inputs.seats }}") == "120120"


def test_text_without_expressions_is_left_alone() -> None:
    assert value("plain text with { braces }") == "plain text with { braces }"


def test_render_walks_nested_data_and_keeps_key_order() -> None:
    data = {
        "z": "${{ inputs.seats }}",
        "a": ["${{ steps.crm.output.account_id }}", {"m": "id=${{ inputs.seats }}"}],
        "n": 5,
        "b": True,
    }
    rendered = render(data, CONTEXT)
    assert rendered == {"z": 120, "a": ["acc_1", {"m": "id=120"}], "n": 5, "b": True}
    assert list(rendered) == ["z", "a", "n", "b"]


def test_a_key_named_like_a_dict_method_reads_the_key() -> None:
    # `items`, `keys`, `values` are common field names; they must never resolve to dict methods
    assert value("${{ inputs.items }}") == [{"sku": "A1"}]
    assert value("${{ inputs.items | length }}") == 1
    with pytest.raises(ExpressionError, match="no attribute 'keys'"):
        value("${{ inputs.customer.keys }}")


def test_filters_are_available() -> None:
    assert value("${{ inputs.emails | length }}") == 2
    assert value("${{ inputs.customer.name | lower }}") == "acme"
    assert value("${{ inputs.missing | default('none') }}", {"inputs": {}}) == "none"
    assert value("${{ inputs.emails | join(', ') }}") == "a@x.io, b@x.io"


# ----------------------------------------------------------------------------- operators


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${{ inputs.seats > 100 && inputs.customer.tier == 'gold' }}", True),
        ("${{ inputs.seats > 500 || inputs.flag }}", False),
        ("${{ !inputs.flag }}", True),
        ("${{ inputs.seats != 120 }}", False),
        ("${{ inputs.nothing == null }}", True),
        ("${{ steps.charge.status == 'failed' && !(steps.crm.status == 'failed') }}", True),
        ("${{ 'a && b || !c' }}", "a && b || !c"),
        ("${{ \"null\" }}", "null"),
        ("${{ true }}", True),
    ],
)
def test_github_style_operators(text: str, expected: Any) -> None:
    assert value(text) == expected


def test_translate_leaves_string_literals_alone() -> None:
    assert translate("a && 'x && y' || !b") == "a  and  'x && y'  or   not b"
    assert translate("x != null") == "x != none"
    assert translate('"nullable" == nullable') == '"nullable" == nullable'


def test_conditions_with_or_without_braces() -> None:
    assert evaluate_condition("${{ inputs.seats > 100 }}", CONTEXT) is True
    assert evaluate_condition("inputs.seats > 1000", CONTEXT) is False
    assert evaluate_condition("${{ inputs.emails }}", CONTEXT) is True
    assert condition_body("${{ inputs.seats > 1 }}").strip() == "inputs.seats > 1"
    assert condition_body("inputs.seats > 1") == "inputs.seats > 1"


# ----------------------------------------------------------------------------- references and scanning


def test_references_are_the_longest_dotted_reads() -> None:
    expression = compile_expression(
        "steps.crm.output.account_id ~ inputs['seats'] ~ item.sku ~ steps.charge.status"
    )
    assert expression.references() == [
        Reference("steps", ("crm", "output", "account_id")),
        Reference("inputs", ("seats",)),
        Reference("item", ("sku",)),
        Reference("steps", ("charge", "status")),
    ]
    assert compile_expression("inputs.emails | length > 1").references() == [Reference("inputs", ("emails",))]


def test_find_expressions_and_iter_strings() -> None:
    assert [b.strip() for b in find_expressions("a ${{ x }} b ${{ y.z }}")] == ["x", "y.z"]
    found = list(iter_strings({"to": ["${{ a }}", "b"], "n": 1, "meta": {"k": "v"}}, "with"))
    assert found == [("with.to[0]", "${{ a }}"), ("with.to[1]", "b"), ("with.meta.k", "v")]


# ----------------------------------------------------------------------------- errors


def test_syntax_errors_are_expression_errors() -> None:
    with pytest.raises(ExpressionError, match="does not parse") as caught:
        compile_expression("inputs.seats >")
    assert not isinstance(caught.value, UnsafeExpression)
    assert caught.value.expression == "inputs.seats >"
    with pytest.raises(ExpressionError, match="empty expression"):
        compile_expression("   ")


def test_missing_data_is_a_clear_error() -> None:
    with pytest.raises(ExpressionError, match="no attribute 'nope'"):
        value("${{ inputs.nope }}")
    with pytest.raises(ExpressionError, match="ZeroDivisionError"):
        value("${{ 1 / 0 }}")


# ----------------------------------------------------------------------------- the sandbox


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("inputs.__class__", "private attribute `__class__`"),
        ("inputs.__class__.__mro__", "private attribute"),
        ("inputs.__init__.__globals__", "private attribute"),
        ("''.__class__.__mro__[1].__subclasses__", "private attribute"),
        ("inputs['__class__']", "private key `__class__`"),
        ("inputs._secret", "private attribute `_secret`"),
        ("_private", "private name `_private`"),
        ("range(10)", "calls are not allowed"),
        ("inputs.customer.name.upper()", "calls are not allowed"),
        ("inputs.emails.append(1)", "calls are not allowed"),
        ("lipsum(1)", "calls are not allowed"),
    ],
)
def test_the_sandbox_refuses_before_running(source: str, words: str) -> None:
    with pytest.raises(UnsafeExpression, match=words.replace("[", r"\[")):
        compile_expression(source)


@pytest.mark.parametrize(
    "source",
    ["'a' * 10**9", "10 ** 10000", "[1] * 10**9", "10**9 * [1]", "(2 ** 64) ** 64", "'ab' * 60000"],
)
def test_the_sandbox_refuses_huge_values_when_running(source: str) -> None:
    expression = compile_expression(source)
    with pytest.raises(UnsafeExpression, match="refused"):
        expression.evaluate({})


def test_moderate_arithmetic_is_allowed() -> None:
    assert compile_expression("'ab' * 3").evaluate({}) == "ababab"
    assert compile_expression("2 ** 10").evaluate({}) == 1024
    assert compile_expression("[0] * 5").evaluate({}) == [0, 0, 0, 0, 0]


@pytest.mark.parametrize("name", ["range", "lipsum", "cycler", "joiner", "namespace", "dict"])
def test_no_globals_are_exposed(name: str) -> None:
    with pytest.raises(ExpressionError, match="undefined"):
        compile_expression(name).evaluate({})


def test_the_context_cannot_be_changed_by_an_expression() -> None:
    data = {"inputs": {"emails": ["a"]}}
    # a bare method reference cannot be called and the immutable sandbox refuses mutation
    with pytest.raises(UnsafeExpression):
        compile_expression("inputs.emails.append('b')")
    assert data == {"inputs": {"emails": ["a"]}}


def test_compile_is_cached() -> None:
    assert compile_expression("inputs.seats + 1") is compile_expression("inputs.seats + 1")
