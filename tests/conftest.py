"""Shared test settings: where the repo and ../shared are, a per-test data directory, the runtime
tests' journal (SQLite and PostgreSQL) and ManualClock, and the planner tests' planners."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from planner.offline import OfflinePlanner
    from runtime import Journal, ManualClock

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PLANNER_CATALOG = SHARED / "bench" / "planner" / "catalog.yaml"
TASKBENCH_CATALOG = SHARED / "bench" / "taskbench" / "catalog.yaml"


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is not present (CI clones the repo beside ../shared)")
    return SHARED


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never let a test write into the working tree's ./.overture."""
    monkeypatch.setenv("OVERTURE_DATA_DIR", str(tmp_path / "overture-data"))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OVERTURE_DATABASE_URL"):
        if name in os.environ and not os.environ.get("OVERTURE_KEEP_ENV"):
            monkeypatch.delenv(name, raising=False)


# the runtime tests' parts; imported when used, so tests that need none do not load the runtime
@pytest.fixture(params=["sqlite", "postgresql"])  # runtime_support.JOURNAL_KINDS
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Journal]:
    """A real journal per kind: a SQLite file, and a PostgreSQL schema of its own (skipped when
    PostgreSQL is not reachable). A module with its own `journal` fixture keeps it."""
    from runtime_support import open_journal

    yield from open_journal(request.param, tmp_path)


@pytest.fixture
def clock() -> ManualClock:
    """Time that moves only when the test moves it."""
    from runtime import ManualClock

    return ManualClock()


# the planner tests' planners, one per test module (its action index is built once)
@pytest.fixture(scope="module")
def bench() -> OfflinePlanner:
    """The offline planner on the development catalog (../shared/bench/planner/catalog.yaml)."""
    from test_planner_support import bench_planner

    return bench_planner()


@pytest.fixture(scope="module")
def small() -> OfflinePlanner:
    """The offline planner on the planner tests' small catalog (`test_planner_support`)."""
    from test_planner_support import small_catalog

    from planner.offline import OfflinePlanner

    return OfflinePlanner(small_catalog())


@pytest.fixture(scope="module")
def demo() -> OfflinePlanner:
    """The offline planner on `overture demo`'s catalog (service/demo/catalog.py)."""
    from planner.offline import OfflinePlanner
    from service.demo.catalog import demo_catalog
    from workflow.loader import catalog_from_data

    return OfflinePlanner(catalog_from_data(demo_catalog("http://127.0.0.1:9", "127.0.0.1", 25)))
