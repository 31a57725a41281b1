"""The action catalog: built-ins, catalogs split over files and folders, invoke kinds, bad catalogs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from workflow.catalog import CORE_ACTIONS, Catalog, CoreInvoke, HttpInvoke, PythonInvoke, SmtpInvoke
from workflow.errors import DocumentError
from workflow.loader import catalog_from_data, load_catalog

BENCH_CATALOG = Path(__file__).parents[2] / "shared" / "bench" / "planner" / "catalog.yaml"
CORE_NAMES = {"core.wait", "core.approval", "core.log", "core.fail"}


def write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def action(name: str, **extra: object) -> dict[str, object]:
    return {"name": name, "description": f"does {name}", **extra}


def test_core_actions_are_in_every_catalog(tmp_path: Path) -> None:
    assert {a.name for a in CORE_ACTIONS} == CORE_NAMES
    for catalog in (Catalog(), load_catalog(BENCH_CATALOG), catalog_from_data({"actions": []}),
                    load_catalog(write(tmp_path / "one.yaml", {"actions": [action("crm.x")]}))):
        assert CORE_NAMES <= set(catalog.names)
        assert all(isinstance(catalog[n].invoke, CoreInvoke) for n in CORE_NAMES)
    approval = Catalog()["core.approval"]
    assert approval.required_inputs == ["prompt"]
    assert set(approval.output_properties) == {"approved", "by", "comment"}


def test_a_catalog_cannot_redefine_a_builtin() -> None:
    catalog = catalog_from_data({"actions": [action("core.wait", input={"type": "object"}), action("crm.x")]})
    assert catalog["core.wait"] is next(a for a in CORE_ACTIONS if a.name == "core.wait")
    assert [a.name for a in catalog.user_actions()] == ["crm.x"]


def test_the_benchmark_catalog_loads() -> None:
    catalog = load_catalog(BENCH_CATALOG)
    assert len(catalog.user_actions()) == 49
    create = catalog["crm.create_account"]
    assert create.required_inputs == ["name"]
    assert "account_id" in create.output_properties
    assert catalog.compensation_of("crm.create_account") is catalog["crm.delete_account"]
    assert catalog.compensation_of("crm.delete_account") is None
    assert catalog.sources == [str(BENCH_CATALOG)]


def test_a_catalog_split_over_files_and_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "more"
    folder.mkdir()
    first = write(tmp_path / "crm.yaml", {"actions": [
        action("crm.create_account", compensation="crm.delete_account"),
        action("crm.delete_account"),
    ]})
    write(folder / "billing.yaml", {"actions": [action("billing.charge")]})
    (folder / "chat.json").write_text('{"actions": [{"name": "chat.post"}]}', encoding="utf-8")
    write(folder / "list.yml", [action("sms.send")])  # a bare list of actions is accepted too
    (folder / "README.md").write_text("not a catalog", encoding="utf-8")

    catalog = load_catalog(first, folder)
    assert {a.name for a in catalog.user_actions()} == {
        "crm.create_account", "crm.delete_account", "billing.charge", "chat.post", "sms.send"}
    assert CORE_NAMES <= set(catalog.names)
    in_folder = [str(folder / n) for n in ("billing.yaml", "chat.json", "list.yml")]
    assert catalog.sources == [str(first), *in_folder]
    # a comma-separated list works like separate arguments (handy in one CLI flag)
    assert set(load_catalog(f"{first},{folder}").names) == set(catalog.names)


def test_duplicate_names_across_files_are_refused_with_both_files(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", {"actions": [action("crm.create_account")]})
    b = write(tmp_path / "b.yaml", {"actions": [action("chat.post"), action("crm.create_account")]})
    with pytest.raises(DocumentError, match=re.escape("`crm.create_account` is defined twice")) as caught:
        load_catalog(a, b)
    assert caught.value.path == str(b)
    assert str(a) in str(caught.value) and str(b) in str(caught.value)


def test_duplicate_names_in_one_file_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.yaml", {"actions": [action("x.a"), action("x.b"), action("x.a")]})
    with pytest.raises(DocumentError, match=re.escape("repeated: x.a")):
        load_catalog(path)


def test_an_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=re.escape("holds no .yaml, .yml or .json catalog files")):
        load_catalog(tmp_path)


def test_invoke_kinds_parse() -> None:
    catalog = catalog_from_data({"actions": [
        action("crm.update", invoke={
            "kind": "http", "method": "PUT", "url": "http://crm.local/a/${{ with.id }}",
            "headers": {"Authorization": "Bearer ${{ secrets.CRM_TOKEN }}"},
        }),
        action("calc.score", invoke={"kind": "python", "callable": "mypkg.actions:score"}),
        action("email.send", invoke={"kind": "smtp", "port": 2525, "sender": "ops@example.com"}),
        action("plan.only"),
    ]})
    http = catalog["crm.update"].invoke
    assert isinstance(http, HttpInvoke) and http.method == "PUT" and http.body == "json"
    assert http.timeout_s == 30
    python = catalog["calc.score"].invoke
    assert isinstance(python, PythonInvoke) and python.callable == "mypkg.actions:score"
    smtp = catalog["email.send"].invoke
    assert isinstance(smtp, SmtpInvoke) and smtp.port == 2525 and smtp.host == "127.0.0.1"
    assert catalog["plan.only"].invoke is None


@pytest.mark.parametrize(
    ("actions", "location", "words"),
    [
        ([action("bad name!")], "actions[0].name", "String should match pattern"),
        ([action("a.b", invoke={"kind": "ftp"})], "actions[0].invoke",
         "does not match any of the expected tags"),
        ([action("a.b", invoke={"kind": "python", "callable": "no_colon"})], "actions[0].invoke.callable",
         "String should match pattern"),
        ([action("a.b", invoke={"kind": "http"})], "actions[0].invoke.url",
         "required field `url` is missing"),
        ([action("a.b"), action("c.d", colour="red")], "actions[1].colour", "unknown field `colour`"),
        ([action("a.b", cost=-1)], "actions[0].cost", "greater than or equal to 0"),
    ],
)
def test_a_bad_catalog_names_the_location(tmp_path: Path, actions: list[dict[str, object]], location: str,
                                          words: str) -> None:
    path = write(tmp_path / "bad.yaml", {"actions": actions})
    with pytest.raises(DocumentError, match="not a valid action catalog") as caught:
        load_catalog(path)
    assert caught.value.path == str(path)
    problems = {p.location: p for p in caught.value.problems}
    assert location in problems, list(problems)
    assert words in problems[location].message


def test_a_catalog_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "scalar.yaml"
    path.write_text("just text\n", encoding="utf-8")
    with pytest.raises(DocumentError, match=re.escape("expected a mapping with `actions: [...]`, found str")):
        load_catalog(path)


def test_alternatives_share_a_capability() -> None:
    catalog = catalog_from_data({"actions": [
        action("sms.twilio", capability="sms"),
        action("sms.vonage", capability="sms"),
        action("email.send"),
    ]})
    assert [a.name for a in catalog.alternatives_of("sms.twilio")] == ["sms.vonage"]
    assert catalog.alternatives_of("email.send") == []


def test_to_data_round_trips(tmp_path: Path) -> None:
    catalog = load_catalog(BENCH_CATALOG)
    again = catalog_from_data(catalog.to_data())
    assert [a.model_dump() for a in again.user_actions()] == [a.model_dump() for a in catalog.user_actions()]
