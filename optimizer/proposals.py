"""Proposals: one rewrite each, with its predicted gain, its evidence and a diff, and their store.

Proposals live beside the journal in `<data dir>/proposals.json`, so the CLI, the API and the UI
see the same list. A person accepts one (`overture optimize accept`), or, for workflows with
`optimize: {auto: true}`, the strongest one is applied automatically when its evidence is enough.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from optimizer.errors import ProposalNotFound, StaleProposal
from optimizer.store import data_dir
from workflow.document import Workflow
from workflow.loader import dumps_workflow

Kind = Literal["parallelize", "fail_fast", "retry_timeout", "route"]
Status = Literal["open", "accepted", "rejected", "superseded"]

# evidence a rewrite needs before it is applied without a person
AUTO_MIN_RUNS = 30
AUTO_MIN_CONFIDENCE = 0.95
# kinds that may be applied without a person: none of them changes what a step does, only when it
# runs and how patiently it is retried; adding alternatives (`route`) changes which services are
# called, so a person says yes to that
AUTO_KINDS: tuple[str, ...] = ("parallelize", "fail_fast", "retry_timeout")


def auto_apply_kinds() -> tuple[str, ...]:
    return AUTO_KINDS


class Gain(BaseModel):
    metric: str
    """What improves, e.g. `makespan`, `wasted_cost`, `step_failure`."""
    before: float
    after: float
    unit: str
    """`s`, `cost units`, `share of runs`, ..."""

    @property
    def value(self) -> float:
        return self.before - self.after

    @property
    def relative(self) -> float:
        return self.value / self.before if self.before else 0.0

    def describe(self) -> str:
        pct = f" ({self.relative:.0%})" if self.before else ""
        return f"{self.metric}: {self.before:.4g} → {self.after:.4g} {self.unit}{pct}"


class Evidence(BaseModel):
    runs: int
    attempts: int
    confidence: float
    """Probability (bootstrap share, or model-based) that the gain is real, 0..1."""


class Proposal(BaseModel):
    id: str
    kind: Kind
    workflow: str
    workflow_version: int | None = None
    title: str
    summary: list[str] = Field(default_factory=list)
    """One line per change, in plain English."""
    gain: Gain
    side_effects: list[Gain] = Field(default_factory=list)
    """Other metrics the rewrite moves (a fail-fast order may lengthen the makespan)."""
    evidence: Evidence
    diff: str
    document: dict[str, Any]
    """The rewritten workflow document."""
    status: Status = "open"
    created_at: float = Field(default_factory=time.time)

    def rewritten(self) -> Workflow:
        return Workflow.model_validate(self.document)

    @property
    def strong(self) -> bool:
        return (self.kind in AUTO_KINDS and self.evidence.runs >= AUTO_MIN_RUNS
                and self.evidence.confidence >= AUTO_MIN_CONFIDENCE and self.gain.value > 0)


def document_diff(old: Workflow, new: Workflow) -> str:
    a = dumps_workflow(old).splitlines(keepends=True)
    b = dumps_workflow(new).splitlines(keepends=True)
    lines = difflib.unified_diff(a, b, fromfile=f"{old.name} (current)", tofile=f"{new.name} (proposed)")
    return "".join(lines)


def proposal_id(kind: str, workflow: Workflow, rewritten: Workflow) -> str:
    blob = json.dumps([kind, workflow.name, workflow.version, rewritten.to_data()], sort_keys=True)
    return f"{kind[:2]}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def make_proposal(kind: Kind, workflow: Workflow, rewritten: Workflow, *, title: str, summary: list[str],
                  gain: Gain, evidence: Evidence, side_effects: list[Gain] | None = None) -> Proposal:
    return Proposal(
        id=proposal_id(kind, workflow, rewritten),
        kind=kind,
        workflow=workflow.name,
        workflow_version=workflow.version,
        title=title,
        summary=summary,
        gain=gain,
        side_effects=side_effects or [],
        evidence=evidence,
        diff=document_diff(workflow, rewritten),
        document=rewritten.to_data(),
    )


class _File(BaseModel):
    proposals: list[Proposal] = Field(default_factory=list)


class ProposalStore:
    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else data_dir() / "proposals.json"

    def _read(self) -> _File:
        if not self.path.exists():
            return _File()
        return _File.model_validate_json(self.path.read_text(encoding="utf-8"))

    def _write(self, data: _File) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(data.model_dump_json(indent=2), encoding="utf-8")
        tmp.replace(self.path)

    def all(self, workflow: str | None = None, *, status: Status | None = None) -> list[Proposal]:
        return [p for p in self._read().proposals
                if (workflow is None or p.workflow == workflow) and (status is None or p.status == status)]

    def replace_open(self, workflow: str, proposals: list[Proposal]) -> None:
        """Store a fresh suggestion round: earlier open proposals of the workflow are superseded."""
        data = self._read()
        fresh = {p.id for p in proposals}
        for old in data.proposals:
            if old.workflow == workflow and old.status == "open" and old.id not in fresh:
                old.status = "superseded"
        data.proposals = [p for p in data.proposals if p.id not in fresh] + proposals
        self._write(data)

    def get(self, workflow: str, proposal_id: str) -> Proposal:
        for p in self._read().proposals:
            if p.workflow == workflow and p.id == proposal_id:
                return p
        raise ProposalNotFound(workflow, proposal_id)

    def set_status(self, proposal_id: str, status: Status) -> None:
        data = self._read()
        for p in data.proposals:
            if p.id == proposal_id:
                p.status = status
        self._write(data)


def accept(proposal: Proposal, current: Workflow) -> Workflow:
    """The accepted document, one version up; refuses a proposal made for another version."""
    if proposal.workflow_version != current.version:
        raise StaleProposal(proposal.id, proposal.workflow_version, current.version)
    new = proposal.rewritten()
    new.version = (current.version or 0) + 1
    new.metadata = {**new.metadata, "optimizer": {"accepted": proposal.id, "kind": proposal.kind}}
    return new
