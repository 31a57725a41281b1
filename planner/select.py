"""Choose the planner: `llm`, `offline`, or `auto` (the LLM when an endpoint is configured, else
offline; offline too when the LLM fails). Every result says which planner wrote it; the document's
`metadata` says why it was planned offline, and a fallback after a configured LLM failed also warns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol

from planner.llm_errors import LLMError, LLMNotConfigured, PlanNotRepaired
from workflow.catalog import Catalog
from workflow.document import Workflow
from workflow.errors import OvertureError

if TYPE_CHECKING:
    # imported where used: `overture plan` needs no editor, and the offline planner no LLM
    # settings (pydantic-settings)
    from openai import OpenAI

    from planner.edit import EditResult
    from planner.llm_planner import LLMPlanner
    from planner.llm_settings import LLMSettings

PlannerMode = Literal["llm", "offline", "auto"]


class PlanOutcome(Protocol):
    """What any planner returns (the LLM's and the offline planner's results both fit)."""

    @property
    def workflow(self) -> Workflow: ...

    @property
    def planner(self) -> str: ...

    @property
    def warnings(self) -> list[str]: ...

    @property
    def explanation(self) -> str: ...


class Planner(Protocol):
    """Anything that turns a request into a validated plan."""

    def plan(self, request: str) -> PlanOutcome: ...


def offline_planner(catalog: Catalog) -> Planner:
    """The offline planner, imported lazily (it loads scikit-learn)."""
    try:
        from planner.offline import OfflinePlanner
    except ImportError as exc:
        raise OvertureError(f"the offline planner is not available ({exc})") from None
    planner: Planner = OfflinePlanner(catalog)
    return planner


def note_fallback(
    result: PlanOutcome, reason: str, catalog: Catalog | None = None, *, warn: bool = True
) -> PlanOutcome:
    """Record on a fallback result why the LLM did not plan it (and, given the catalog, check it:
    whichever planner wrote it, an invalid plan is never returned). `warn=False` records the reason
    in the metadata only: planning offline because no LLM is configured is the normal case."""
    if catalog is not None:
        from workflow.validator import ensure_valid

        ensure_valid(result.workflow, catalog)
    if warn:
        try:
            result.warnings.append(f"planned offline because {reason}")
        except AttributeError:  # a result type with an immutable warnings sequence
            pass
    metadata: dict[str, Any] = result.workflow.metadata
    metadata.setdefault("planner", "offline")
    metadata["fallback_reason"] = reason
    return result


class AutoPlanner:
    """The LLM planner, falling back to the offline planner when no endpoint is configured or the
    LLM cannot produce a valid plan (down, refusing, unrepairable)."""

    def __init__(
        self, catalog: Catalog, settings: LLMSettings | None = None, *, client: OpenAI | None = None
    ) -> None:
        from planner.llm_settings import LLMSettings

        self.catalog = catalog
        self.settings = settings or LLMSettings()
        self._client = client
        self._offline: Planner | None = None
        self._llm: LLMPlanner | None = None  # kept: it remembers which output mode the server takes

    @property
    def offline(self) -> Planner:
        if self._offline is None:
            self._offline = offline_planner(self.catalog)
        return self._offline

    def plan(self, request: str) -> PlanOutcome:
        if self._client is None and not self.settings.configured:
            return note_fallback(
                self.offline.plan(request),
                "no LLM endpoint is configured (set OPENAI_API_KEY or OPENAI_BASE_URL)",
                self.catalog,
                warn=False,
            )
        from planner.llm_planner import LLMPlanner

        try:
            if self._llm is None:
                self._llm = LLMPlanner(self.catalog, self.settings, client=self._client)
            return self._llm.plan(request)
        except (LLMError, PlanNotRepaired) as exc:
            reason = str(exc).splitlines()[0]
            return note_fallback(
                self.offline.plan(request), f"the LLM planner failed: {reason}", self.catalog
            )


def make_planner(
    mode: PlannerMode, catalog: Catalog, settings: LLMSettings | None = None, *, client: OpenAI | None = None
) -> Planner:
    """A planner for `mode`; `llm` raises `LLMNotConfigured` when no endpoint is set."""
    if mode == "offline":
        return offline_planner(catalog)
    from planner.llm_settings import LLMSettings

    settings = settings or LLMSettings()
    if mode == "llm":
        if client is None and not settings.configured:
            raise LLMNotConfigured()
        from planner.llm_planner import LLMPlanner

        return LLMPlanner(catalog, settings, client=client)
    if mode == "auto":
        return AutoPlanner(catalog, settings, client=client)
    raise OvertureError(f"unknown planner `{mode}`; use llm, offline or auto")


def edit_plan(
    workflow: Workflow,
    instruction: str,
    catalog: Catalog,
    *,
    mode: PlannerMode = "auto",
    settings: LLMSettings | None = None,
    client: OpenAI | None = None,
) -> EditResult:
    """`workflow` changed by `instruction`: by the model (`llm`), the offline editor (`offline`), or
    the model when configured with the offline editor as fallback (`auto`). Always validated."""
    from planner.edit import EditNotUnderstood, EditResult, edit_offline
    from planner.edit_diff import diff_workflows
    from planner.llm_settings import LLMSettings

    settings = settings or LLMSettings()
    configured = client is not None or settings.configured
    if mode == "offline" or (mode == "auto" and not configured):
        result = edit_offline(workflow, instruction, catalog)
        if mode == "auto":  # the normal case, not a warning: the metadata says so
            metadata: dict[str, Any] = result.workflow.metadata
            metadata["edited_by"] = "offline"
            metadata["edit_reason"] = "no LLM endpoint is configured"
        return result
    if mode == "llm" and not configured:
        raise LLMNotConfigured()
    from planner.llm_planner import LLMPlanner

    try:
        planned = LLMPlanner(catalog, settings, client=client).edit(workflow, instruction)
    except (LLMError, PlanNotRepaired) as exc:
        if mode == "llm":
            raise
        reason = str(exc).splitlines()[0]
        try:
            result = edit_offline(workflow, instruction, catalog)
        except EditNotUnderstood as offline_exc:
            detail = f"{offline_exc.reason} (the LLM failed first: {reason})"
            raise EditNotUnderstood(instruction, detail) from None
        result.warnings.append(f"edited offline because the LLM failed: {reason}")
        return result
    diff = diff_workflows(workflow, planned.workflow)
    warnings = list(planned.warnings)
    if diff.empty:
        warnings.append("the model changed nothing; rephrase the instruction or try --planner offline")
    return EditResult(
        workflow=planned.workflow, diff=diff, planner="llm", changes=diff.sentences(), warnings=warnings
    )
