"""Offline plan editing: change a workflow by a plain-English instruction, without a model.

Understood instructions (one or several, separated by `;` or sentences):
  add X after / before / in parallel with Y     "also X once Y", "then X", "X when Y is done"
  remove / drop / delete Y
  retry Y up to N times (N+1 attempts)         "try Y up to N times" (N attempts), "add a retry to Y"
  if Y fails undo Z / compensate Z             "add a compensation to Z", "undo Z if the run fails"
  run A and B in parallel                       "make A and B parallel"
  run A before B / make B wait for A            "run B after A", "make A and B sequential"

Steps are found by id, title, or the words of their action and description; new steps get the
catalog action that best matches the words (the offline matcher when present). The result passes
the validator, or the edit fails with the problems it would cause.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from planner.edit_diff import WorkflowDiff, diff_workflows
from planner.llm_wire import default_compensation_with, input_type_of
from workflow.catalog import ActionSpec, Catalog
from workflow.document import Compensation, RetryPolicy, Step, Workflow
from workflow.errors import InvalidWorkflow, OvertureError
from workflow.graph import referenced_steps
from workflow.validator import validate

ActionRanker = Callable[[str, int], Sequence[tuple[ActionSpec, float]]]
"""(text, k) → the k best-matching actions with scores."""

_NUMBERS = {"once": 1, "one": 1, "twice": 2, "two": 2, "three": 3, "thrice": 3, "four": 4, "five": 5,
            "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "twelve": 12}
_IRREGULAR = {"paid": "pay", "sent": "send", "made": "make", "built": "build", "sold": "sell", "got": "get",
              "texted": "text", "emailed": "email", "shipped": "ship", "billed": "bill", "done": "do",
              "signed": "sign", "mail": "email", "sms": "text", "notify": "message", "ping": "message",
              "charged": "charge", "payment": "pay", "refunded": "refund", "provisioned": "provision",
              "booked": "book"}
_STOP = {"the", "a", "an", "to", "of", "for", "and", "step", "steps", "it", "them", "their", "its", "that",
         "this", "is", "are", "be", "been", "has", "have", "with", "on", "in", "at", "by", "then", "also",
         "once", "after", "before", "when", "as", "soon", "customer", "s", "up", "out", "run"}


class EditNotUnderstood(OvertureError):
    """The offline editor could not read the instruction (or find what it names)."""

    def __init__(self, instruction: str, reason: str) -> None:
        self.instruction = instruction
        self.reason = reason
        super().__init__(f"cannot apply “{instruction}”: {reason}")


@dataclass
class EditResult:
    """The edited document, what changed, and who edited it."""

    workflow: Workflow
    """The new document; it passed the validator."""
    diff: WorkflowDiff
    """Structural diff from the old document."""
    planner: str = "offline"
    """`offline` or `llm`."""
    changes: list[str] = field(default_factory=list)
    """What was done, one sentence per change."""
    warnings: list[str] = field(default_factory=list)
    """Validator warnings and fallbacks."""


# ----------------------------------------------------------------------------- words


def _stem(word: str) -> str:
    word = _IRREGULAR.get(word, word)
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return _IRREGULAR.get(word, word)


def words(text: str) -> set[str]:
    """Stemmed content words of a text (ids and action names split on `_` and `.`)."""
    raw = re.findall(r"[a-z0-9]+", re.sub(r"[_.\-]", " ", text.lower()))
    return {_stem(w) for w in raw if w not in _STOP}


def overlap_ranker(catalog: Catalog) -> ActionRanker:
    """Rank actions by shared words with their name and description (dependency-free)."""
    vocab = {a.name: (words(a.name), words(a.description)) for a in catalog}

    def rank(text: str, k: int) -> list[tuple[ActionSpec, float]]:
        want = words(text)
        scored = []
        for action in catalog:
            name_words, desc_words = vocab[action.name]
            score = 2.0 * len(want & name_words) + len(want & desc_words)
            if score:
                scored.append((action, score / (1 + len(want))))
        scored.sort(key=lambda pair: -pair[1])
        return scored[:k]

    return rank


def default_ranker(catalog: Catalog) -> ActionRanker:
    """Word overlap first (predictable for short edit phrases), the offline matcher breaking ties
    and answering when no word is shared."""
    overlap = overlap_ranker(catalog)
    try:
        from planner.matching import ActionMatcher
    except ImportError:
        return overlap
    matcher = ActionMatcher(catalog)

    def rank(text: str, k: int) -> list[tuple[ActionSpec, float]]:
        # only actions sharing a word with the text qualify: a guess from the matcher alone would
        # turn "frobnicate" into some unrelated step
        found = list(overlap(text, max(k, 10)))
        if not found:
            return []
        try:
            semantic = {a.name: float(score) for a, score in matcher.rank(text, 20)}
        except Exception:  # the matcher is a helper here; word overlap alone still answers
            semantic = {}
        found.sort(key=lambda pair: (-pair[1], -semantic.get(pair[0].name, 0.0)))
        return found[:k]

    return rank


# ----------------------------------------------------------------------------- the editor


_CLAUSE_SPLIT = re.compile(r"\s*(?:;|\.\s+|\n)\s*")
_REL = r"(?P<rel>right after|after|once|when|as soon as|following|before|ahead of|in parallel with|" \
       r"alongside|at the same time as|together with|while|concurrently with)"


class OfflineEditor:
    """Applies understood instructions to a copy of a workflow."""

    def __init__(self, catalog: Catalog, *, ranker: ActionRanker | None = None) -> None:
        self.catalog = catalog
        self._ranker = ranker

    @property
    def ranker(self) -> ActionRanker:
        if self._ranker is None:
            self._ranker = default_ranker(self.catalog)
        return self._ranker

    def edit(self, workflow: Workflow, instruction: str) -> EditResult:
        clauses = [c.strip(" .") for c in _CLAUSE_SPLIT.split(instruction.strip()) if c.strip(" .")]
        if not clauses:
            raise EditNotUnderstood(instruction, "the instruction is empty")
        doc = workflow.model_copy(deep=True)
        changes: list[str] = []
        for clause in clauses:
            changes.append(self._apply(doc, clause))
        report = validate(doc.to_data(), self.catalog)
        if not report.ok or report.workflow is None:
            raise InvalidWorkflow(report.errors)
        new = report.workflow
        new.metadata = {**workflow.metadata, "edited_by": "offline"}
        return EditResult(workflow=new, diff=diff_workflows(workflow, new), planner="offline",
                          changes=changes, warnings=[str(p) for p in report.warnings])

    # -- dispatch ------------------------------------------------------------------------------
    def _apply(self, doc: Workflow, clause: str) -> str:
        text = re.sub(r"\s+", " ", clause.lower()).strip()
        text = re.sub(r"^(?:please|and|also|then|now)\s+", "", text)
        handlers = (self._remove, self._retry, self._compensate, self._parallel, self._sequence, self._add)
        for handler in handlers:
            try:
                done = handler(doc, text)
            except EditNotUnderstood as exc:
                raise EditNotUnderstood(clause, exc.reason) from None
            if done is not None:
                return done
        raise EditNotUnderstood(clause, "try e.g. “add X after Y”, “remove Y”, “retry Y up to 3 times”, "
                                        "“if Y fails undo Z”, “run A and B in parallel”, “run A before B”")

    # -- step references -----------------------------------------------------------------------
    def find_step(self, doc: Workflow, ref: str, *, required: bool = True) -> Step | None:
        """The step a phrase names: by id, title, or the words of its action and description."""
        ref = re.sub(r"^(?:the|a|an)\s+", "", ref.strip(" .,'\"`")).strip()
        ref = re.sub(r"\s+(?:step|one)$", "", ref)
        for step in doc.steps:
            sid = step.id.lower()
            names = (sid, sid.replace("_", " "), step.title.lower(), step.action.lower())
            if ref in names:
                return step
        want = words(ref)
        best: tuple[float, Step] | None = None
        for step in doc.steps:
            action = self.catalog.get(step.action)
            own = words(f"{step.id} {step.title}")
            about = words(f"{step.action} {step.description or ''} {action.description if action else ''}")
            score = 2.0 * len(want & own) + len(want & about)
            if score and (best is None or score > best[0]):
                best = (score, step)
        if best is None:
            if required:
                raise EditNotUnderstood(ref, f"no step matches “{ref}”; the steps are "
                                             + ", ".join(doc.step_ids))
            return None
        return best[1]

    # -- handlers: each returns a sentence when the clause is its kind, else None ----------------
    def _remove(self, doc: Workflow, text: str) -> str | None:
        m = re.match(r"^(?:remove|drop|delete|get rid of|take out)\s+(?P<ref>.+?)$", text)
        if not m:
            return None
        step = self.find_step(doc, m["ref"])
        assert step is not None
        if len(doc.steps) == 1:
            raise EditNotUnderstood(text, "a workflow needs at least one step")
        readers = [s.id for s in doc.steps if step.id in referenced_steps(s) and s.id != step.id]
        if readers:
            raise EditNotUnderstood(text, f"step `{step.id}` is read by {', '.join(readers)}; "
                                          "change those first")
        doc.steps.remove(step)
        for other in doc.steps:
            # keep the order the removed step gave: its dependents now wait for its own needs
            if step.id in other.needs:
                _wait_past(other, step)
            other.ordered_after = [n for n in other.ordered_after if n != step.id]
        return f"removed step `{step.id}` ({step.action})"

    def _retry(self, doc: Workflow, text: str) -> str | None:
        patterns = (
            (r"^(?:add (?:a )?retr(?:y|ies) (?:to|for|on) |retry )(?P<ref>.+?)(?:(?: up to| at most)? "
             r"(?P<n>\w+)(?: more)? times?)?$", 1),
            (r"^(?:try|attempt) (?P<ref>.+?) up to (?P<n>\w+) times?$", 0),
            (r"^(?P<ref>.+?) should (?:be )?retr(?:y|ied) up to (?P<n>\w+) times?$", 1),
            (r"^(?:make|let) (?P<ref>.+?) retry(?: up to (?P<n>\w+) times?)?$", 1),
        )
        for pattern, extra in patterns:
            m = re.match(pattern, text)
            if not m:
                continue
            raw = m["n"]
            if raw is None:
                attempts = 3
            else:
                count = int(raw) if raw.isdigit() else _NUMBERS.get(raw)
                if count is None:
                    raise EditNotUnderstood(text, f"“{raw}” is not a number of times")
                attempts = count + extra
            step = self.find_step(doc, m["ref"])
            assert step is not None
            attempts = max(1, min(100, attempts))
            base = step.retry or RetryPolicy()
            step.retry = base.model_copy(update={"max_attempts": attempts})
            return f"step `{step.id}` now makes up to {attempts} attempts"
        return None

    def _compensate(self, doc: Workflow, text: str) -> str | None:
        m = re.match(r"^(?:add (?:a |an )?(?:compensation|undo) (?:to|for)|compensate|make) (?P<ref>.+?)"
                     r"(?P<able> undoable)?$", text)
        if m and (not text.startswith("make ") or m["able"]):
            step = self.find_step(doc, m["ref"])
            assert step is not None
            return self._set_compensation(step, text)
        m = re.match(r"^if (?P<trigger>.+?) fails?,? (?:then )?(?P<rest>.+)$", text) or \
            re.match(r"^(?P<rest>(?:undo|reverse|roll back|rollback|revert|cancel|void|release|refund|"
                     r"delete) .+?) if (?P<trigger>.+?) fails?$", text)
        if not m:
            return None
        rest = re.sub(r"^(?:undo|compensate|reverse|roll back|rollback|revert)\s+", "", m["rest"])
        want = words(rest)
        best: tuple[float, Step] | None = None
        for step in doc.steps:
            undo = self.catalog.compensation_of(step.action)
            if undo is None:
                continue
            score = 2.0 * len(want & words(f"{step.id} {step.title}")) + len(want & words(step.action)) \
                + len(want & words(f"{undo.name} {undo.description}"))
            if score and (best is None or score > best[0]):
                best = (score, step)
        if best is None:
            return None  # not about undoing a step (e.g. "if the charge fails, post in #billing")
        return self._set_compensation(best[1], text)

    def _set_compensation(self, step: Step, text: str) -> str:
        undo = self.catalog.compensation_of(step.action)
        if undo is None:
            raise EditNotUnderstood(text, f"the catalog has no undo action for `{step.action}` "
                                          f"(step `{step.id}`)")
        wired = default_compensation_with(self.catalog, step.id, step.action, step.with_, undo.name)
        step.compensate = Compensation(action=undo.name, with_=wired)
        return f"step `{step.id}` is undone by `{undo.name}` if the run fails later"

    def _pair(self, doc: Workflow, a: str, b: str) -> tuple[Step, Step] | None:
        first = self.find_step(doc, a, required=False)
        second = self.find_step(doc, b, required=False)
        if first is None or second is None or first.id == second.id:
            return None
        return first, second

    def _parallel(self, doc: Workflow, text: str) -> str | None:
        m = re.match(r"^(?:run|do|make|have|execute|let) (?P<a>.+?) and (?P<b>.+?) (?:run )?(?:in parallel|"
                     r"parallel|at the same time|concurrently|together|simultaneously)$", text)
        if not m:
            return None
        pair = self._pair(doc, m["a"], m["b"])
        if pair is None:
            return None
        a, b = pair
        for x, y in ((a, b), (b, a)):
            if x.id in referenced_steps(y):
                raise EditNotUnderstood(text, f"step `{y.id}` reads the output of `{x.id}`, "
                                              "so it must wait for it")
        changed = False
        for x, y in ((a, b), (b, a)):
            if x.id in y.needs:
                changed = True
                _wait_past(y, x)
        return f"steps `{a.id}` and `{b.id}` {'now run' if changed else 'already ran'} in parallel"

    def _sequence(self, doc: Workflow, text: str) -> str | None:
        forms = (
            (r"^(?:run|do|make|put) (?P<a>.+?) (?:before|ahead of) (?P<b>.+?)$", False),
            (r"^(?:run|do|put) (?P<b>.+?) (?:after|once) (?P<a>.+?)$", False),
            (r"^(?:make|have|let) (?P<b>.+?) wait (?:for|on|until) (?P<a>.+?)"
             r"(?: (?:is )?(?:done|finishe[sd]))?$", False),
            (r"^(?P<b>.+?) (?:should|must) (?:wait for|come after|run after|follow) (?P<a>.+?)$", False),
            (r"^(?:make|run) (?P<a>.+?) and (?P<b>.+?) (?:sequential|sequentially|in sequence|in order|"
             r"one after the other)$", False),
        )
        for pattern, _ in forms:
            m = re.match(pattern, text)
            if not m:
                continue
            pair = self._pair(doc, m["a"], m["b"])
            if pair is None:
                return None  # perhaps "add X before Y": let `_add` try
            a, b = pair
            if b.id in referenced_steps(a):
                raise EditNotUnderstood(text, f"step `{a.id}` reads the output of `{b.id}`, "
                                              "so it cannot run first")
            a.needs = [n for n in a.needs if n != b.id]
            if a.id not in b.needs:
                b.needs = [*b.needs, a.id]
            return f"step `{b.id}` now waits for `{a.id}`"
        return None

    def _add(self, doc: Workflow, text: str) -> str | None:
        text = re.sub(r"^(?:add|insert|include|put in)\s+(?:a |an |another )?(?:step (?:to |that )?)?", "",
                      text)
        m = re.match(rf"^(?P<what>.+?),? {_REL} (?P<ref>.+?)$", text)
        if m:
            what, rel, anchor = m["what"], m["rel"], self.find_step(doc, _trim_anchor(m["ref"]))
        else:
            m2 = re.match(rf"^{_REL} (?P<ref>.+?),? (?P<what>.+?)$", text)
            if m2:
                what, rel, anchor = m2["what"], m2["rel"], self.find_step(doc, _trim_anchor(m2["ref"]))
            else:
                what, rel, anchor = text, "after", doc.steps[-1]
        assert anchor is not None
        ranked = list(self.ranker(what, 3))
        if not ranked:
            raise EditNotUnderstood(text, f"no catalog action matches “{what}”")
        action = ranked[0][0]
        step = Step(id=self._new_id(doc, action), action=action.name, description=what.strip())
        if rel in ("before", "ahead of"):
            step.needs = list(anchor.needs)
            anchor.needs = [step.id]
            placement = f"before `{anchor.id}`"
        elif rel in ("in parallel with", "alongside", "at the same time as", "together with", "while",
                     "concurrently with"):
            step.needs = list(anchor.needs)
            placement = f"in parallel with `{anchor.id}`"
        else:
            step.needs = [anchor.id]
            placement = f"after `{anchor.id}`"
        step.with_ = {**_literal_inputs(action, what), **self._fill_inputs(doc, action, step, what)}
        position = doc.steps.index(anchor) + (0 if rel in ("before", "ahead of") else 1)
        doc.steps.insert(position, step)
        return f"added step `{step.id}` ({action.name}) {placement}"

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _new_id(doc: Workflow, action: ActionSpec) -> str:
        base = action.name.split(".")[-1]
        candidate, n = base, 2
        while candidate in doc.step_ids:
            candidate, n = f"{base}_{n}", n + 1
        return candidate

    def _fill_inputs(self, doc: Workflow, action: ActionSpec, step: Step, what: str) -> dict[str, Any]:
        """Required inputs from an upstream step's output of the same name, else a new run input."""
        upstream = self._ancestors(doc, step)
        values: dict[str, Any] = {}
        literal = _literal_inputs(action, what)
        for name in action.required_inputs:
            if name in literal:
                continue
            source = next((s for s in upstream if name in self._outputs(s)), None)
            if source is not None:
                values[name] = f"${{{{ steps.{source.id}.output.{name} }}}}"
                continue
            schema = action.input_properties.get(name)
            inputs: dict[str, Any] = doc.inputs if doc.inputs is not None else {"type": "object"}
            props: dict[str, Any] = inputs.setdefault("properties", {})
            if name not in props:
                props[name] = input_type_of(schema or {}) or {"type": "string"}
            doc.inputs = inputs
            values[name] = f"${{{{ inputs.{name} }}}}"
        return values

    def _outputs(self, step: Step) -> dict[str, Any]:
        action = self.catalog.get(step.action)
        return action.output_properties if action else {}

    @staticmethod
    def _ancestors(doc: Workflow, step: Step) -> list[Step]:
        by_id = {s.id: s for s in doc.steps}
        seen: list[Step] = []
        todo = list(step.needs)
        while todo:
            sid = todo.pop(0)
            if sid in by_id and by_id[sid] not in seen:
                seen.append(by_id[sid])
                todo.extend(by_id[sid].needs)
        return seen


_UNIT_SECONDS = {"second": 1, "sec": 1, "minute": 60, "min": 60, "hour": 3600, "day": 86_400, "week": 604_800}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?|an?|one|two|three|four|five|six|seven|ten|twelve)\s*"
                          r"(second|sec|minute|min|hour|day|week)s?\b")


def duration_seconds(text: str) -> float | None:
    """"wait 2 hours" → 7200; None when the text names no duration."""
    m = _DURATION_RE.search(text)
    if not m:
        return None
    raw = m.group(1)
    count = float(raw) if raw[0].isdigit() else float(_NUMBERS.get(raw, 1) if raw not in ("a", "an") else 1)
    return count * _UNIT_SECONDS[m.group(2)]


def _literal_inputs(action: ActionSpec, phrase: str) -> dict[str, Any]:
    """Inputs of the built-ins that the instruction itself gives: a wait's length, a prompt, a message."""
    if action.name == "core.wait":
        seconds = duration_seconds(phrase)
        return {"seconds": seconds if seconds is not None else 60}
    if action.name == "core.approval":
        return {"prompt": phrase.strip().capitalize()}
    if action.name in ("core.log", "core.fail"):
        return {"message": phrase.strip().capitalize()}
    return {}


def _wait_past(step: Step, skipped: Step) -> None:
    """`step` keeps waiting for what `skipped` waited for, only not for `skipped` itself."""
    step.needs = [n for n in step.needs if n != skipped.id] + [n for n in skipped.needs
                                                               if n not in step.needs]


def _trim_anchor(ref: str) -> str:
    """"the invoice is paid" → "the invoice paid": drop the verb-phrase glue around a step name."""
    ref = re.sub(r"\b(?:is|are|has been|have been|was|were|gets|get)\b", " ", ref)
    ref = re.sub(r"\b(?:done|finished|complete|completed|over|ready)\b", " ", ref)
    return re.sub(r"\s+", " ", ref).strip() or ref


def edit_offline(workflow: Workflow, instruction: str, catalog: Catalog, *,
                 ranker: ActionRanker | None = None) -> EditResult:
    """Apply an instruction without a model; `EditNotUnderstood` or `InvalidWorkflow` when it can't."""
    return OfflineEditor(catalog, ranker=ranker).edit(workflow, instruction)


def edit_workflow(workflow: Workflow, instruction: str, catalog: Catalog, *, mode: str = "auto",
                  settings: Any = None, client: Any = None) -> EditResult:
    """The mode-aware entry point (`llm`, `offline`, `auto`); see `planner.select.edit_plan`."""
    from planner.select import PlannerMode, edit_plan

    if mode not in ("llm", "offline", "auto"):
        raise OvertureError(f"unknown planner `{mode}`; use llm, offline or auto")
    chosen: PlannerMode = mode  # type: ignore[assignment]
    return edit_plan(workflow, instruction, catalog, mode=chosen, settings=settings, client=client)
