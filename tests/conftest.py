"""Shared test settings: where the repo and ../shared are, and a per-test data directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
