"""The one walker over parsed data for what JSON cannot hold (workflow/json_values.py): each kind of
problem, located by its path; all problems or the first; the alias budget; and a walk that stays
linear in the size of the data however deeply it nests. The last tests read text through the loader,
which words the alias and depth problems for YAML."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflow.errors import DocumentError
from workflow.json_values import MAX_DEPTH, JsonValueProblem, check_json_values
from workflow.loader import format_location, parse_text, read_data

NAN, INF = float("nan"), float("inf")


def nested(levels: int, inner: Any) -> Any:
    """`inner` inside `levels` lists: `[[...[inner]...]]`."""
    for _ in range(levels):
        inner = [inner]
    return inner


def located(problems: list[JsonValueProblem]) -> list[tuple[str, str]]:
    return [(format_location(p.path), p.message) for p in problems]


# -- each kind of problem ----------------------------------------------------------------------------


@pytest.mark.parametrize(("number", "name"), [(NAN, "NaN"), (INF, "Infinity"), (-INF, "-Infinity")])
def test_a_non_finite_number_is_named_with_a_fix(number: float, name: str) -> None:
    [problem] = check_json_values({"amount": number, "fine": 1.5})
    assert problem == JsonValueProblem(
        ("amount",),
        f"{name} is not a JSON number",
        "write a finite number, or quote it to keep it as text",
        "non_finite",
    )


def test_unpaired_surrogates_in_strings_and_keys_are_found_and_their_keys_shown_escaped() -> None:
    data = json.loads('{"ok": "\\ud83d\\ude00 paired", "note": "a\\ud800b", "\\udc00": {"x": 1e999}}')
    problems = check_json_values(data)
    assert [(p.path, p.code) for p in problems] == [
        (("note",), "surrogate"),
        (("\\udc00",), "surrogate"),  # the key, shown as its escape: a location that can be sent
        (("\\udc00", "x"), "non_finite"),  # below it too, so the whole report encodes as UTF-8
    ]
    assert problems[0].message == "the string holds an unpaired UTF-16 surrogate escape (e.g. `\\ud800`)"
    assert problems[1].message == "the key holds an unpaired UTF-16 surrogate escape"
    assert all("Unicode" in p.hint for p in problems[:2])
    json.dumps([list(p.path) for p in problems], ensure_ascii=False).encode("utf-8")


def test_too_deep_is_located_by_the_first_parts_of_its_path_and_not_walked_further() -> None:
    fine = nested(MAX_DEPTH, "deepest allowed")  # the string is exactly MAX_DEPTH levels down
    assert check_json_values({"ok": nested(MAX_DEPTH - 1, "x")}) == []
    assert check_json_values(fine) == []
    too_deep = nested(MAX_DEPTH + 1, NAN)  # the NaN beyond the limit is not reached
    assert check_json_values({"a": {"b": {"c": {"d": too_deep}}}}) == [
        JsonValueProblem(
            ("a", "b", "c"), f"nested more than {MAX_DEPTH} levels deep", "flatten it", "too_deep"
        )
    ]
    assert located(check_json_values([[[]]], max_depth=1)) == [("[0][0]", "nested more than 1 levels deep")]
    assert check_json_values([[]], max_depth=1) == []


def test_data_that_contains_itself_ends_at_the_depth_limit_or_the_value_budget() -> None:
    loop: list[Any] = ["x"]
    loop.append(loop)  # what `a: &a [x, *a]` parses to
    assert [p.code for p in check_json_values(loop)] == ["too_deep"]
    [problem] = check_json_values(loop, max_depth=10**6, max_values=500)
    assert problem == JsonValueProblem(
        (), "holds more than 500 values", "hold fewer values, or split them up", "too_many_values"
    )


def test_the_value_budget_counts_an_aliased_value_each_time_it_is_used() -> None:
    shared: Any = ["lol"] * 9
    for _ in range(8):  # a DAG of 70 lists that expands to 9**9 values: the billion laughs
        shared = [shared] * 9
    started = time.perf_counter()
    assert [p.code for p in check_json_values(shared, max_values=10_000)] == ["too_many_values"]
    assert time.perf_counter() - started < 1.0
    within = [["a"] * 9] * 9  # 1 + 9 + 81 values
    assert check_json_values(within, max_values=91) == []
    assert [p.code for p in check_json_values(within, max_values=90)] == ["too_many_values"]


# -- paths --------------------------------------------------------------------------------------------


def test_paths_run_through_nested_lists_and_dicts_in_document_order() -> None:
    data = {
        "steps": [
            {"id": "a", "with": {"amount": NAN, "items": [1, [2, INF]]}},
            {"id": "b", "retry": {"backoff": [-INF]}},
        ],
        "inputs": {"default": "\udfff"},
    }
    assert located(check_json_values(data)) == [
        ("steps[0].with.amount", "NaN is not a JSON number"),
        ("steps[0].with.items[1][1]", "Infinity is not a JSON number"),
        ("steps[1].retry.backoff[0]", "-Infinity is not a JSON number"),
        ("inputs.default", "the string holds an unpaired UTF-16 surrogate escape (e.g. `\\ud800`)"),
    ]


def test_non_string_yaml_keys_are_shown_as_text_not_as_list_indexes() -> None:
    data = yaml.safe_load("1: {true: .nan}\nlist: [.inf]\n")
    assert [p.path for p in check_json_values(data)] == [("1", "True"), ("list", 0)]


def test_the_value_itself_has_the_empty_path() -> None:
    assert [(p.path, p.code) for p in check_json_values(NAN)] == [((), "non_finite")]
    assert check_json_values("plain") == check_json_values(None) == check_json_values({}) == []


# -- all, or the first --------------------------------------------------------------------------------


def test_first_stops_at_the_first_problem_and_all_goes_on() -> None:
    data = {"a": NAN, "b": ["\ud800", {"c": INF}], "d": nested(MAX_DEPTH + 2, 0)}
    every = check_json_values(data)
    assert [p.code for p in every] == ["non_finite", "surrogate", "non_finite", "too_deep"]
    assert check_json_values(data, first=True) == every[:1]
    # the first problem comes before the budget runs out: `first` does not walk on to find it
    budgeted = [NAN, *range(100)]
    assert [p.code for p in check_json_values(budgeted, max_values=10)] == ["non_finite", "too_many_values"]
    assert [p.code for p in check_json_values(budgeted, max_values=10, first=True)] == ["non_finite"]


def test_first_does_not_walk_what_follows_the_first_problem() -> None:
    expanding: Any = [0] * 10
    for _ in range(9):  # 10**10 values once expanded: walking them all would take hours
        expanding = [expanding] * 10
    started = time.perf_counter()
    assert [p.path for p in check_json_values([NAN, expanding], first=True)] == [(0,)]
    assert time.perf_counter() - started < 1.0


def test_deep_parts_below_one_place_are_one_problem_and_separate_places_are_each_reported() -> None:
    deep = nested(MAX_DEPTH, [1, 2, 3])
    data = {"x": {"y": {"z": [deep, deep]}}, "other": deep}
    assert located(check_json_values(data)) == [
        ("x.y.z", f"nested more than {MAX_DEPTH} levels deep"),
        ("other[0][0]", f"nested more than {MAX_DEPTH} levels deep"),
    ]


# -- a large input stays fast -------------------------------------------------------------------------


def _best_of(runs: int, walk: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        walk()
        best = min(best, time.perf_counter() - started)
    return best


def test_a_large_input_is_walked_in_time_linear_in_its_size_however_deep() -> None:
    flat = list(range(25_000))
    deep = nested(5_000, list(range(20_000)))  # as many values, most of them 5,000 levels down
    assert check_json_values(flat, max_depth=10_000) == check_json_values(deep, max_depth=10_000) == []
    flat_s = _best_of(3, lambda: check_json_values(flat, max_depth=10_000))
    deep_s = _best_of(3, lambda: check_json_values(deep, max_depth=10_000))
    # a path copied along to every value (not built only for a problem) made this ~40 times the flat walk
    assert deep_s < 3 * flat_s + 0.05, (flat_s, deep_s)
    records = [{"id": i, "name": f"n{i}", "tags": ["é", None, True], "score": 0.5} for i in range(200_000)]
    assert _best_of(1, lambda: check_json_values(records)) < 10.0  # 1.6 million values: ~0.5 s here


def test_many_values_beyond_the_depth_limit_cost_no_more_than_walking_to_them() -> None:
    wide_below = nested(MAX_DEPTH, [[0] for _ in range(100_000)])  # 100,000 deep lists under one place
    many_places = [nested(MAX_DEPTH - 2, [[0]]) for _ in range(2_000)]  # 2,000 places, each too deep
    assert _best_of(1, lambda: check_json_values(wide_below)) < 1.0
    problems = check_json_values(many_places)
    assert len(problems) == 2_000 and {len(p.path) for p in problems} == {3}
    assert _best_of(1, lambda: check_json_values(many_places)) < 5.0


# -- through the loader --------------------------------------------------------------------------------


def test_the_loader_refuses_unpaired_surrogates_in_yaml_and_json_text(tmp_path: Path) -> None:
    with pytest.raises(DocumentError) as caught:
        parse_text('name: x\nsteps:\n  - {id: log, with: {message: "hi\\udc00"}}\n', source="flow.yaml")
    assert str(caught.value) == (
        "flow.yaml: steps[0].with.message: the string holds an unpaired UTF-16 surrogate escape (e.g. "
        "`\\ud800`); write valid Unicode text (a surrogate escape must be one of a high-low pair)"
    )
    (tmp_path / "inputs.json").write_text('{"\\ud800": 1}')
    with pytest.raises(DocumentError, match=r"inputs.json: \\ud800: the key holds an unpaired UTF-16"):
        read_data(tmp_path / "inputs.json")


def test_the_loader_words_the_depth_and_alias_problems_for_yaml() -> None:
    with pytest.raises(DocumentError) as caught:
        parse_text("steps: &a [*a]\n", source="loop.yaml")
    assert str(caught.value) == (
        f"loop.yaml: steps[0][0]: nested more than {MAX_DEPTH} levels deep (is a YAML alias used inside "
        "its own anchor?); flatten it"
    )
    with pytest.raises(DocumentError) as caught:
        parse_text(json.dumps({"a": nested(MAX_DEPTH + 5, 1)}), source="deep.json")
    assert str(caught.value) == f"deep.json: a[0][0]: nested more than {MAX_DEPTH} levels deep; flatten it"
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    with pytest.raises(
        DocumentError,
        match=r"laughs.yaml: its anchors and aliases \(`&name`, `\*name`\) "
        r"expand to more than 1,000,\d{3} values \(or refer to themselves\)",
    ):
        parse_text("\n".join(lines), source="laughs.yaml")
    with pytest.raises(DocumentError, match=r"^a.yaml: a: NaN is not a JSON number; write a finite number"):
        parse_text("a: .nan\n", source="a.yaml")
