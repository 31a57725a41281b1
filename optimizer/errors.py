"""Errors of the optimizer; each carries its data and reads as one line."""

from __future__ import annotations

from workflow.errors import OvertureError


class OptimizerError(OvertureError):
    """Base of the optimizer's errors."""


class NoModels(OptimizerError):
    def __init__(self, root: str, *, version: int | None = None) -> None:
        what = f"model version {version}" if version is not None else "trained models"
        super().__init__(f"no {what} in {root}; run `overture optimize train` first")
        self.root = root
        self.version = version


class NoHistory(OptimizerError):
    def __init__(self, source: str, workflow: str | None = None) -> None:
        scope = f" for workflow `{workflow}`" if workflow else ""
        super().__init__(f"no attempts{scope} in {source}; run the workflow first")
        self.source = source
        self.workflow = workflow


class ProposalNotFound(OptimizerError):
    def __init__(self, workflow: str, proposal_id: str) -> None:
        super().__init__(
            f"no proposal `{proposal_id}` for workflow `{workflow}`; "
            "`overture optimize suggest` lists the current ones"
        )
        self.workflow = workflow
        self.proposal_id = proposal_id


class StaleProposal(OptimizerError):
    def __init__(self, proposal_id: str, expected_version: int | None, actual_version: int | None) -> None:
        super().__init__(
            f"proposal `{proposal_id}` was made for version {expected_version} of the workflow, "
            f"which is now at version {actual_version}; run `overture optimize suggest` again"
        )
        self.proposal_id = proposal_id
        self.expected_version = expected_version
        self.actual_version = actual_version
