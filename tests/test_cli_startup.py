"""The `overture` commands import only what they use.

Every command pays for its imports before it does anything: the runtime (the engine, SQLAlchemy,
the journals) costs ~0.4 s and scikit-learn (with the SciPy it pulls in) ~0.75 s, so a command that
merely loads them is slow for nothing. Each test runs the real console entry point in a subprocess
with `python -X importtime`, which lists every module the process imported, and checks the list:
a behavioural guard, not a timing test (timings on a shared machine are noise).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "enterprise-onboarding.yaml"
BENCH_CATALOG = ROOT.parent / "shared" / "bench" / "planner" / "catalog.yaml"

HEAVY = (
    "sqlalchemy",
    "fastapi",
    "starlette",
    "uvicorn",
    "sklearn",
    "scipy",
    "numpy",
    "runtime.engine",
    "runtime.journal",
    "runtime.active_run",
    "psycopg",
)
"""Packages (and runtime modules) no command that runs nothing and plans nothing needs."""


def imported_by(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str, set[str]]:
    """Run `overture ARGS` with Python's import profiling on (PYTHONPROFILEIMPORTTIME is `-X
    importtime`): (exit code, stdout, every module the process imported)."""
    code, out, err = cli(*args, env={"PYTHONPROFILEIMPORTTIME": "1", **(env or {})})
    modules = set()
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":  # the header line
                modules.add(name)
    assert modules, "no import was listed: the checks below would pass for any command"
    return code, out, modules


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_help_imports_nothing_heavy() -> None:
    code, out, modules = imported_by("--help")
    assert code == 0 and "validate" in out and "plan" in out and "runs" in out
    assert heavy_in(modules) == []
    # nor the contract's own dependencies, nor asyncio (only running commands use it): help only
    # lists the commands
    assert not {"pydantic", "jsonschema", "networkx", "yaml", "workflow.document", "asyncio"} & modules


def test_validate_imports_nothing_heavy() -> None:
    code, out, modules = imported_by("validate", EXAMPLE, "--catalog", BENCH_CATALOG)
    assert code == 0 and out.startswith(f"{EXAMPLE}: valid"), out
    assert "workflow.validator" in modules  # it did the work
    assert heavy_in(modules) == []
    assert "networkx" not in modules  # the validator needs it only to name a cycle
    assert "asyncio" not in modules


def test_invalid_document_is_reported_without_heavy_imports(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps:\n  - {id: a, action: core.log, needs: [nowhere]}\n", encoding="utf-8")
    code, out, modules = imported_by("validate", bad)
    assert code == 1 and "nowhere" in out, out
    assert heavy_in(modules) == []


def test_a_cycle_is_still_named(tmp_path: Path) -> None:
    """The validator loads networkx (through workflow.graph) only to name a cycle, and then does."""
    looped = tmp_path / "looped.yaml"
    looped.write_text(
        "name: x\nsteps:\n  - {id: a, action: core.log, needs: [b]}\n"
        "  - {id: b, action: core.log, needs: [a]}\n",
        encoding="utf-8",
    )
    code, out, modules = imported_by("validate", looped)
    assert code == 1 and "in a cycle: a → b → a" in out, out
    assert "networkx" in modules and heavy_in(modules) == []


def test_subcommand_help_and_version_import_nothing_heavy() -> None:
    for args in (("runs", "--help"), ("optimize", "--help"), ("run", "--help"), ("version",)):
        code, out, modules = imported_by(*args)
        assert code == 0 and out.strip(), args
        assert heavy_in(modules) == [], args


def test_token_list_does_not_import_the_api(tmp_path: Path) -> None:
    """`token list` reads the token store (SQLAlchemy) and prints dates; the API (FastAPI) it
    shares the date format with is not loaded for that."""
    code, _, _ = imported_by("token", "create", "--name", "ci-bot", "--data-dir", tmp_path)
    assert code == 0
    code, out, modules = imported_by("token", "list", "--data-dir", tmp_path, "--format", "json")
    assert code == 0 and '"name": "ci-bot"' in out and '"created_at": "20' in out and 'Z"' in out, out
    assert "sqlalchemy" in modules  # it did read the store
    assert not {"fastapi", "starlette", "service.api.models"} & modules


@pytest.mark.skipif(not BENCH_CATALOG.is_file(), reason="the benchmark catalog is beside the repository")
def test_plan_imports_the_matcher_but_not_the_runtime_or_the_service(tmp_path: Path) -> None:
    """The first plan against a catalog fits the matcher's TF-IDF models with scikit-learn and
    caches them (planner.tfidf); later plans read the cache and load neither scikit-learn nor SciPy."""
    plan = (
        "plan",
        "Create the account for Acme, then provision a tenant and set up billing",
        "--catalog",
        BENCH_CATALOG,
        "--planner",
        "offline",
    )
    env = {"OVERTURE_DATA_DIR": str(tmp_path)}
    code, cold, modules = imported_by(*plan, env=env)
    assert code == 0 and "steps:" in cold, cold
    # the offline matcher's TF-IDF is scikit-learn: seeing it here shows the check sees imports
    assert "sklearn.feature_extraction.text" in modules
    assert [m for m in heavy_in(modules) if not m.startswith(("sklearn", "scipy", "numpy"))] == []
    assert len(list((tmp_path / "cache").glob("matcher-*.npz"))) == 1

    code, warm, modules = imported_by(*plan, env=env)
    assert code == 0 and warm == cold
    assert "planner.tfidf" in modules and "numpy" in modules  # it matched, from the cache
    assert [m for m in heavy_in(modules) if m != "numpy" and not m.startswith("numpy.")] == []
    # planning needs neither the editor nor, offline, the LLM's settings (pydantic-settings)
    assert not {"planner.edit", "planner.edit_diff", "planner.llm_settings", "pydantic_settings"} & modules


def test_runtime_names_load_on_first_use() -> None:
    """`runtime`'s re-exports load lazily (PEP 562): importing the package or a light submodule does
    not load the engine, yet every public name still resolves to the real object."""
    script = (
        "import sys, runtime, runtime.records\n"
        "assert 'sqlalchemy' not in sys.modules and 'runtime.engine' not in sys.modules\n"
        "from runtime import journal_stats\n"  # a submodule, not a re-export, still imports
        "from runtime import Engine, Journal, MemoryJournal, RunState\n"
        "from runtime.engine import Engine as E\n"
        "from runtime.records import RunState as R\n"
        "assert Engine is E and RunState is R and 'sqlalchemy' in sys.modules\n"
    )
    run_with_every_name(script, "runtime")


def run_with_every_name(script: str, package: str) -> None:
    """Run `script` in a fresh interpreter, then check that every name in `package.__all__`
    resolves, `dir()` lists them, and an unknown name is an AttributeError naming it."""
    script += (
        f"import {package} as package\n"
        "missing = [n for n in package.__all__ if getattr(package, n, None) is None]\n"
        "assert not missing, missing\n"
        "assert set(dir(package)) >= set(package.__all__)\n"
        "try:\n"
        "    package.no_such_name\n"
        "except AttributeError as exc:\n"
        "    assert 'no_such_name' in str(exc)\n"
        "else:\n"
        f"    raise SystemExit('{package}.no_such_name did not raise')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_yaml_is_read_fast_with_the_same_data_and_messages(tmp_path: Path) -> None:
    """The loader reads YAML with libyaml (C) for speed; the data are PyYAML's own, and a bad
    document still gets PyYAML's messages, which name what is wrong (libyaml's do not)."""
    import yaml

    from workflow.errors import DocumentError
    from workflow.loader import load_catalog, parse_text, read_data

    assert hasattr(yaml, "CSafeLoader"), "PyYAML without libyaml: every catalog load pays ~8x more"
    for path in [*sorted((ROOT / "examples").glob("*.yaml")), ROOT / "planner" / "lexicon.yaml"]:
        assert read_data(path) == yaml.safe_load(path.read_text(encoding="utf-8")), path
    if BENCH_CATALOG.is_file():
        assert len(load_catalog(BENCH_CATALOG).user_actions()) > 10
    for text, message in [
        ("name: x\n\tsteps: []\n", "line 2, column 1: found character '\\t' that cannot start any token"),
        ("a: &x 1\nb: *y\n", "line 2, column 4: found undefined alias 'y'"),
        ("a: '\ud800'\n", "special characters are not allowed"),
        ("[" * 5000 + "]" * 5000, "nested too deeply to read"),
    ]:
        with pytest.raises(DocumentError) as caught:
            parse_text(text, source="bad.yaml")
        assert message in str(caught.value), (text[:20], str(caught.value))


def test_triggers_list_of_documents_does_not_load_the_fire_store() -> None:
    """Next fire times of documents on disk need the cron rules, not the fire store (SQLAlchemy)."""
    code, out, modules = imported_by("triggers", "list", ROOT / "examples" / "weekly-usage-digest.yaml")
    assert code == 0 and "next: " in out, out
    assert "runtime.triggers.scheduler" in modules  # it did compute the schedule
    assert heavy_in(modules) == []
    assert "runtime.triggers.store" not in modules


def test_trigger_names_load_on_first_use() -> None:
    """`runtime.triggers`'s re-exports load lazily (PEP 562), as `runtime`'s do: the scheduler's
    names do not bring the fire store, yet every public name still resolves to the real object."""
    script = (
        "import sys, runtime.triggers\n"
        "from runtime.triggers import TriggeredWorkflow, upcoming, sign, CronRule\n"
        "assert 'sqlalchemy' not in sys.modules and 'runtime.triggers.store' not in sys.modules\n"
        "from runtime.triggers import FireStore, Scheduler\n"
        "from runtime.triggers.store import FireStore as F\n"
        "from runtime.triggers.scheduler import Scheduler as S\n"
        "assert FireStore is F and Scheduler is S and 'sqlalchemy' in sys.modules\n"
        "from runtime.triggers import engine_target\n"  # a submodule, not a re-export, still imports
    )
    run_with_every_name(script, "runtime.triggers")


def test_triggers_list_of_an_empty_store_imports_only_the_stores(tmp_path: Path) -> None:
    # a new service: nothing stored, so nothing to load or describe; the SQLite fire store needs
    # neither the journal (only its URL rules) nor the PostgreSQL dialect and its drivers
    code, out, modules = imported_by("triggers", "list", env={"OVERTURE_DATA_DIR": str(tmp_path)})
    assert code == 0 and "no workflow has triggers" in out, out
    assert "runtime.triggers.store" in modules  # it did open the fire store
    assert (tmp_path / "journal.db").exists()
    unwanted = {"workflow.loader", "workflow.document", "planner.triggers", "croniter", "runtime.journal",
                "sqlalchemy.dialects.postgresql", "psycopg"}
    assert unwanted & modules == set()
