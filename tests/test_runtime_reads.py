"""Which step results a step's expressions read, worked out before it runs: the engine hands a
step only those (a copy of every result per step made long chains quadratic)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from runtime import Engine, Journal, ManualClock
from runtime.active_run import steps_read
from runtime.invocation import ActionCall
from workflow.catalog import ActionSpec, Catalog
from workflow.document import Step, Workflow


def step(**fields: Any) -> Step:
    return Step.model_validate({"id": "x", "action": "t.echo", **fields})


def test_the_steps_named_in_if_for_each_and_with_are_the_reads() -> None:
    assert steps_read(step()) == frozenset()
    assert steps_read(step(**{"with": {"a": "plain text", "n": 3}})) == frozenset()
    assert steps_read(
        step(**{"with": {"a": "${{ steps.one.output.id }}", "b": ["x ${{ steps.two.status }} y"]}})
    ) == {"one", "two"}
    assert steps_read(step(**{"if": "steps.gate.output.ok && inputs.go"})) == {"gate"}
    assert steps_read(step(**{"if": "${{ steps['gate'].output.ok }}"})) == {"gate"}
    assert steps_read(step(for_each="${{ steps.list.output.items }}")) == {"list"}
    assert steps_read(step(for_each=["${{ steps.a.output }}", "b"])) == {"a"}


def test_a_step_looked_up_by_a_computed_name_reads_every_step() -> None:
    assert steps_read(step(**{"with": {"a": "${{ steps[inputs.which].output }}"}})) is None
    assert steps_read(step(**{"with": {"a": "${{ steps | length }}"}})) is None


class Echo:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def invoke(self, call: ActionCall) -> dict[str, Any]:
        self.seen.append(call.inputs)
        return {"n": len(self.seen), "inputs": call.inputs}


def test_a_chain_still_sees_the_results_it_names_and_a_computed_name_sees_all(tmp_path: Path) -> None:
    catalog = Catalog([ActionSpec(name="t.echo", description="echo")])
    document = Workflow.model_validate(
        {
            "name": "reads",
            "inputs": {"which": {"type": "string"}},
            "steps": [
                {"id": "a", "action": "t.echo"},
                {"id": "b", "action": "t.echo", "needs": ["a"], "with": {"prev": "${{ steps.a.output.n }}"}},
                {
                    "id": "c",
                    "action": "t.echo",
                    "needs": ["b"],
                    "if": "steps.b.output.inputs.prev == 1",
                    "with": {"any": "${{ steps[inputs.which].output.n }}", "count": "${{ steps | length }}"},
                },
            ],
        }
    )
    invoker = Echo()

    async def main() -> None:
        journal = Journal.open(tmp_path / "j.db")
        async with Engine(catalog, journal, invoker, clock=ManualClock(), poll_interval_s=None) as engine:
            result = await engine.wait(await engine.start_run(document, {"which": "a"}))
        journal.close()
        assert result.succeeded, result

    asyncio.run(main())
    assert invoker.seen == [{}, {"prev": 1}, {"any": 1, "count": 3}]
