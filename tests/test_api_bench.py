"""bench/api_load.py, small: it starts a real `overture serve`, loads it, and its last line is one
JSON object of figures with no errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_load_bench_runs_and_reports_json(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "api_load.py"), "--runs", "12", "--concurrency", "4",
         "--wait", "60", "--data-dir", str(tmp_path / "bench")],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["started"] == 12 and figures["finished"] == 12 and figures["errors"] == 0
    assert 0 < figures["start_p50_ms"] <= figures["start_p99_ms"]
    assert figures["start_rps"] > 0 and figures["show_rps"] > 0
    assert (tmp_path / "bench" / "journal.db").exists()  # the server really ran with that data dir
