#!/usr/bin/env python3
"""Score the LLM planner on the planner benchmark, when an endpoint is configured.

    OPENAI_API_KEY=sk-... OVERTURE_MODEL=gpt-4o-mini python bench/llm_planner.py
    OPENAI_BASE_URL=http://127.0.0.1:11434/v1 OVERTURE_MODEL=qwen2.5:7b python bench/llm_planner.py --limit 10

It runs `../shared/bench/planner/score.py` with this script (in `plan` mode) as the planner
command, so the figures are exactly the scorer's; it prints the scorer's summary line and the
tokens spent. Without an endpoint it says so and exits 0 (nothing to measure).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO.parent / "shared" / "bench" / "planner"
sys.path.insert(0, str(REPO))


def plan_one(catalog_path: str, request: str) -> int:
    """The planner command the scorer runs: one request → one JSON document on stdout."""
    from planner.llm_planner import LLMPlanner
    from planner.llm_settings import LLMSettings
    from workflow.errors import OvertureError
    from workflow.loader import load_catalog

    try:
        result = LLMPlanner(load_catalog(catalog_path), LLMSettings()).plan(request)
    except OvertureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    usage_file = os.environ.get("OVERTURE_BENCH_USAGE")
    if usage_file:
        with open(usage_file, "a", encoding="utf-8") as out:
            out.write(json.dumps(result.workflow.metadata.get("usage", {})) + "\n")
    print(json.dumps(result.workflow.to_data(), ensure_ascii=False))
    return 0


def score(cases: Path, catalog: Path, limit: int | None) -> int:
    from planner.llm_settings import LLMSettings

    settings = LLMSettings()
    if not settings.configured:
        print("no LLM endpoint configured: set OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (a local "
              "OpenAI-compatible server) and OVERTURE_MODEL; nothing to measure", file=sys.stderr)
        return 0
    if not (BENCH / "score.py").exists():
        print(f"error: the scorer is not at {BENCH / 'score.py'}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        case_file = cases
        if limit:
            case_file = Path(tmp) / "cases.jsonl"
            lines = [line for line in cases.read_text(encoding="utf-8").splitlines() if line.strip()]
            case_file.write_text("\n".join(lines[:limit]) + "\n", encoding="utf-8")
        usage_file = Path(tmp) / "usage.jsonl"
        env = {**os.environ, "OVERTURE_BENCH_USAGE": str(usage_file)}
        command = [sys.executable, str(BENCH / "score.py"), str(case_file), "--",
                   sys.executable, str(Path(__file__).resolve()), "plan", "--catalog", str(catalog)]
        print(f"scoring the LLM planner (model {settings.model} at {settings.base_url or 'OpenAI'}) ...",
              file=sys.stderr)
        done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True)
        summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "{}"
        totals = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "calls": 0}
        if usage_file.exists():
            for line in usage_file.read_text(encoding="utf-8").splitlines():
                for key, value in json.loads(line).items():
                    totals[key] = totals.get(key, 0) + int(value)
        try:
            figures = json.loads(summary)
        except json.JSONDecodeError:
            figures = {"scorer_output": summary}
        print(json.dumps({"planner": "llm", "model": settings.model, **figures, "usage": totals}))
        return done.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode")
    plan = sub.add_parser("plan", help="plan one request (the command the scorer runs)")
    plan.add_argument("--catalog", required=True)
    plan.add_argument("request")
    parser.add_argument("--cases", type=Path, default=BENCH / "cases.jsonl")
    parser.add_argument("--catalog", type=Path, default=BENCH / "catalog.yaml")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N cases")
    args = parser.parse_args(argv)
    if args.mode == "plan":
        return plan_one(args.catalog, args.request)
    return score(args.cases, args.catalog, args.limit)


if __name__ == "__main__":
    sys.exit(main())
