"""Reading a request: sentences → items → draft steps with their dependencies, conditions,
retries, waits and undo instructions. `planner.assemble` turns the drafts into a document."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from planner import markers as mk
from planner import phrases as ph
from planner.lexicon import Lexicon, stem, words
from planner.literals import object_name
from planner.matching import _STOP, ActionMatcher, action_verbs
from planner.text import PLACEHOLDER_RE, Masked, mask, segments, sentences
from workflow.catalog import ActionSpec, Catalog

MATCH_THRESHOLD = 0.2
_RUNNER_UP = 0.25
"""How far below the best match an action whose verb fits may score and still be taken instead."""


def restorable(action: ActionSpec) -> dict[str, str]:
    """Inputs an action reports the earlier value of (`stage` ← `previous_stage`): calling the
    action again with those values undoes it."""
    outputs = action.output_properties
    return {
        key: f"previous_{key}"
        for key in action.input_properties
        if isinstance(outputs.get(f"previous_{key}"), dict)
    }


_DATE_INPUT = re.compile(
    r"(?:^|_)(?:date|dates|time|day|start|starts|end|ends|when|deadline|due|scheduled|schedule|check_in|checkin"
    r"|arrival|departure|at|on)(?:_|$)",
    re.IGNORECASE,
)


def dated_input(action: ActionSpec) -> bool:
    """The action takes a date or time of its own (a meeting's start, a booking's day)."""
    for key, schema in action.input_properties.items():
        if not isinstance(schema, dict):
            continue
        if schema.get("format") in {"date", "date-time", "time"} or _DATE_INPUT.search(key):
            return True
        if re.search(r"\b(?:date|day|time)\b", str(schema.get("description", "")), re.IGNORECASE):
            return True
    return False


_NOT_WHO = frozenset({"need", "needs", "get", "gets", "with"})
_POSSESSIVES = frozenset("your their our his her my its you them him me us".split())
_MODAL_WORDS = frozenset("should must need needs has have had to be been get gets got".split())


def _iso_ok(value: str) -> bool:
    from datetime import datetime

    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def undoable(action: ActionSpec) -> bool:
    """The catalog names its undo, or the action reports what it changed from."""
    return bool(action.compensation) or bool(restorable(action))


_GENERIC = frozenset(
    "it its they them that this those these both all three two four each either everything everyone he she"
    " him her done ready finished complete completed exist exists in is are be been has have was were the"
    " a an of and or there went through back gone live up out on off".split()
)
_QUESTION = re.compile(r"^(?:what|how|where|when|which|who|is|are|will|does|do)\b", re.IGNORECASE)
_WANT = re.compile(r"^\s*(?:i|we)(?:'d| would)?\s+(?:want|need|like|wish)\b", re.IGNORECASE)
_MODAL = re.compile(r"\b(?:has|have|needs?|must|should|ought)\s+to\b|\bneeds\b", re.IGNORECASE)


@dataclass
class Condition:
    text: str
    negate: bool = False
    anchor: list[int] = field(default_factory=list)
    """Drafts the condition may read (the steps right before the branch)."""


@dataclass
class Draft:
    index: int
    action: ActionSpec
    text: str
    """The item's masked text (placeholders resolved through `masked`)."""
    needs: list[int] = field(default_factory=list)
    condition: Condition | None = None
    attempts: int | None = None
    timeout_s: float | None = None
    wait_s: float | None = None
    message: str | None = None
    for_each: str | None = None
    quoted: str | None = None
    """The one quoted literal this draft stands for, when an item listed several."""
    compensate: bool = False
    approvers: list[str] | None = None
    until: str | None = None
    """`core.wait`: the ISO-8601 time to wait for."""
    sentence: int = 0
    segment: int = 0
    unit: int = 0
    score: float = 1.0


@dataclass
class Gate:
    """A person's decision a step waits for ("if the manager approves"): a `core.approval` first."""

    who: str | None
    phrase: str


@dataclass
class Reading:
    drafts: list[Draft]
    masked: Masked
    warnings: list[str]


@dataclass
class _Frame:
    condition: Condition
    anchor: list[int]
    branches: list[list[int]] = field(default_factory=list)
    """The frontier of each branch closed by an `otherwise`."""

    @property
    def has_else(self) -> bool:
        return bool(self.branches)


class Reader:
    def __init__(self, catalog: Catalog, matcher: ActionMatcher, lex: Lexicon) -> None:
        self.catalog = catalog
        self.matcher = matcher
        self.lex = lex
        catalog_verbs = {stem(action_verbs(a).split()[0]) for a in matcher.actions if action_verbs(a)}
        self.verbs = frozenset({stem(v) for v in lex.verbs} | {v for v in catalog_verbs if len(v) > 2})
        heads = {action_verbs(a).split()[0].lower() for a in matcher.actions if action_verbs(a)}
        self.imperatives = frozenset(lex.verbs | {v for v in heads if len(v) > 2})
        """Verbs as an instruction opens with them ("order", not "ordered" or "orders")."""
        self._generic_verbs = frozenset(stem(v) for v in lex.generic_verbs)
        self.drafts: list[Draft] = []
        self.frontier: list[int] = []
        self.warnings: list[str] = []
        self.masked = Masked("")
        self._unit = 0
        self._undo: list[tuple[str, list[int], int]] = []
        self._has_else = False
        self._policies: dict[int, str] = {}
        """Approvals said of a kind of step ("refunds over $500 need approval"), by what they name."""
        self._before_planned: list[tuple[str, int]] = []
        """Clauses said before a step already planned ("approve before we charge it"), with that step."""
        self._gated: int | None = None
        """The sentence whose "if <someone> approves" became an approval step."""

    # -- the walk

    def read(self, request: str) -> Reading:
        self.masked = mask(request)
        all_sentences = sentences(self.masked.text)
        for s_index, sentence in enumerate(all_sentences):
            self._sentence(s_index, sentence, len(all_sentences))
        self._apply_undo()
        self._policy_steps()
        self._drop_summary(all_sentences)
        self._name_what_is_approved()
        return Reading(self.drafts, self.masked, self.warnings)

    def _name_what_is_approved(self) -> None:
        """ "The manager has to approve before we charge the card": the prompt asks about the step
        the approval gates ("Approve: charge the card?"), not the clause that asked for it. Only an
        approval whose prompt is still its own clause and that some step waits for."""
        for draft in self.drafts:
            if draft.action.name != "core.approval" or draft.message != self.masked.unmask(draft.text):
                continue
            gated = [d for d in self.drafts if draft.index in d.needs and not d.action.is_core]
            if not gated or len(gated) > 3:
                continue
            shown = " and ".join(dict.fromkeys(self._show(d.text) for d in gated))
            if len(shown) <= 100:
                draft.message = f"Approve: {shown[:1].upper() + shown[1:]}?"

    def _sentence(self, s_index: int, sentence: str, total: int) -> None:
        head_par = False
        if ":" in sentence:
            head, body = sentence.split(":", 1)
            head_lead, head_rest = mk.read_lead(head, self.lex, self.verbs)
            if not head_rest.strip():
                head_par = any(k in {"par", "block"} for k in head_lead.kinds)
                sentence = body
            elif any(
                mk.starts_with_verb(mk.read_lead(t, self.lex, self.verbs)[1], self.verbs)
                for _, t in mk.split_items(body.strip(), self.lex, self.verbs)
            ):
                self.warnings.append(f'read "{self._show(head)}" as a heading for what follows it')
                sentence = body
            else:
                sentence = f"{head} {body}"
        if s_index == 0 and total > 1:
            lead, rest = mk.read_lead(sentence, self.lex, self.verbs)
            umbrella = self.lex.umbrella.match(rest.strip())
            if umbrella and not lead.kinds and len(mk.split_items(rest, self.lex, self.verbs)) == 1:
                self.warnings.append(
                    f'read "{self._show(sentence)}" as an introduction to the steps that follow'
                )
                return
        frame: _Frame | None = None
        first_in_sentence: int | None = None
        self._has_else = re.search(rf"\b(?:{mk.ELSE_WORDS})\b", sentence, re.IGNORECASE) is not None
        for g_index, seg in enumerate(segments(sentence)):
            frame, first_in_sentence = self._segment(
                s_index, g_index, seg, frame, first_in_sentence, head_par
            )
        if frame is not None:
            self._close(frame)

    def _close(self, frame: _Frame) -> None:
        if frame.has_else:
            merged: list[int] = []
            for branch in [*frame.branches, self.frontier]:
                merged += [i for i in branch if i not in merged]
            self.frontier = merged

    def _segment(
        self,
        s_index: int,
        g_index: int,
        seg: str,
        frame: _Frame | None,
        first_in_sentence: int | None,
        head_par: bool,
    ) -> tuple[_Frame | None, int | None]:
        ends_first = re.search(r"\s+(?:first|beforehand)\s*$", seg, re.IGNORECASE) is not None
        seg = self._failure_first(self._uninvert(seg))
        seg = self._before_tails(seg)
        seg = mk.TRAILING_NOISE.sub("", seg).strip()
        # "refund it and cancel the plan if the manager approves": the approval gates every item
        seg_gate, seg_condition, seg = self._segment_gate(seg)
        if mk.PURE_PAR.match(seg.strip()):
            self._parallelise([d for d in self.drafts if d.sentence == s_index and d.segment == g_index - 1])
            return frame, first_in_sentence
        par_all = head_par
        trailing_par = False
        trailing = mk.TRAILING_PAR.search(seg)
        if trailing and trailing.start() > 0:
            seg = seg[: trailing.start()].strip(" ,")
            par_all = trailing_par = True
        items = self._coordinated(mk.split_items(seg, self.lex, self.verbs), s_index)
        seg_drafts: list[int] = []
        inherit_deps: list[int] | None = None
        borrowed_verb = ""
        prev_unit_first: int | None = None
        unit_first: int | None = None
        undo_open: int | None = None
        chain: list[int] = []
        last_created: list[int] = []
        failure_open: str | None = None
        for i_index, (connector, item) in enumerate(items):
            lead, rest = mk.read_lead(item, self.lex, self.verbs)
            rest = mk.TRAILING_NOISE.sub("", rest).strip(" ,")
            group_start = False
            if connector not in {"followed", "and", "comma"}:
                # "A and B" / "A followed by B" make one unit; "then" starts the next
                self._unit += 1
                prev_unit_first, unit_first = unit_first, None
                if trailing_par and connector == "then" and seg_drafts:
                    # "A, then B and C in parallel": the trailing "in parallel" groups what
                    # follows the last "then"; that group starts after A
                    seg_drafts, group_start = [], True
            kinds = lead.kinds
            if failure_open is not None and not (set(kinds) - {"seq"}):
                # "if the payment fails, remove the charge and notify finance": every item joined to
                # the first is said of the same failure
                if self.lex.undo.search(self.masked.plain(rest)) or not words(self.masked.plain(rest)):
                    if undo_open is not None:
                        # "cancel the subscription and delete the customer": the undo list goes on
                        self._undo[undo_open] = (
                            f"{self._undo[undo_open][0]}, {rest}",
                            *self._undo[undo_open][1:],
                        )
                        continue
                    if self._failure_clause(failure_open, rest, s_index, g_index):
                        if self._undo and self._undo[-1][0] == rest:
                            undo_open = len(self._undo) - 1
                        continue
                elif self._unplanned_failure(failure_open, rest, step=True):
                    continue
            undo_open = failure_open = None
            if i_index == 0 and "par" in kinds and len(items) > 1:
                par_all = True
                kinds = [k for k in kinds if k != "par"]
            if {"after", "if", "else", "unless"} & set(kinds):
                seg_drafts = []  # "A; once A is done, B and C in parallel": the group starts at B
            # conditions and their branches
            if "join" in kinds and frame is not None:
                self._close(frame)
                frame = None
            condition: Condition | None = None
            cond_text = lead.refs.get("if") or lead.refs.get("unless")
            if cond_text is None and "after" in kinds and ph.threshold(lead.refs["after"]):
                # "when the refund is over $500, ...": a condition, not a step to wait for
                kinds = ["if" if k == "after" else k for k in kinds]
                cond_text = lead.refs["if"] = lead.refs.pop("after")
            if cond_text is not None and self.lex.failure.search(cond_text):
                if self._failure_clause(cond_text, rest, s_index, g_index):
                    failure_open = cond_text
                    if self._undo and self._undo[-1][0] == rest:
                        undo_open = len(self._undo) - 1
                    continue
                if self._unplanned_failure(cond_text, rest):
                    failure_open = cond_text
                    continue
            gate_condition: Condition | None = None
            if seg_gate is not None and i_index == 0:
                gate, seg_gate = seg_gate, None
                gate_condition, seg_condition = seg_condition, None
            else:
                gate = None
            succeeded = self._succeeded(cond_text) if "if" in lead.refs and cond_text else None
            if succeeded is not None:
                # "if the refund goes through, email them": it runs after the refund, which succeeded
                kinds = ["after" if k == "if" else k for k in kinds]
                lead.refs["after"] = succeeded
                cond_text = None
            asked = any(d.action.name == "core.approval" for d in self.drafts)
            if cond_text is not None and "if" in lead.refs and asked and self._rejection(cond_text):
                self._unplanned_rejection(f"if {cond_text}", rest)
                continue
            if "else" in kinds and frame is None and self._gated == s_index:
                # "if the manager approves, refund it; otherwise email them"
                self._unplanned_rejection("otherwise", rest)
                continue
            unless_approved = "unless" in kinds and "if" not in lead.refs and cond_text is not None
            if unless_approved and cond_text is not None and self._gate(cond_text, False):
                negated = self._NEGATED.match(rest)
                if negated is None:
                    # "unless the manager approves, refund it": only on a rejection, which ends the run
                    self._unplanned_unless(cond_text, rest)
                    continue
                # "unless the manager approves, don't refund it": only with the approval
                rest = rest[negated.end() :]
                kinds = ["if" if k == "unless" else k for k in kinds]
                lead.refs["if"] = cond_text
            if cond_text is not None and "if" in lead.refs:
                both = self._gate_and_data(cond_text)
                if both is not None:
                    # "if the order is over $5,000 and the manager approves, charge the card": the
                    # approval is asked only when the data condition holds; the charge needs it with
                    # no `if` of its own (a skipped approval does not stop it, a rejection does)
                    gate, gate_condition = both
                    kinds = [k for k in kinds if k != "if"]
                    cond_text = None
                    self._gated = s_index
            if cond_text is not None:
                # "if the manager approves, refund it": an approval step, not a yes/no input
                gate = self._gate(cond_text, unless="unless" in kinds and "if" not in lead.refs)
                if gate is not None:
                    kinds = [k for k in kinds if k not in {"if", "unless"}]
                    cond_text = None
                    self._gated = s_index
                    if frame is not None:  # a new "if" ends the branch before it
                        self._close(frame)
                        frame = None
                    if self._open_approval():
                        gate = None  # "ask the manager to approve it; if they do, ...": that approval
            elif "after" in kinds and gate is None and not self._open_approval():
                # "once finance signs off, refund it" with no approval asked for yet
                gate = self._gate(lead.refs["after"], unless=False)
                if gate is not None:
                    kinds = [k for k in kinds if k != "after"]
            # compute where this item starts from
            deps = self._deps(
                kinds,
                lead.refs,
                s_index,
                first_in_sentence,
                prev_unit_first,
                inherit_deps,
                seg_drafts if par_all else None,
                frame,
                unit_first,
                chain,
            )
            if group_start:
                chain = []
            if "par" in kinds or "block" in kinds or "par_ref" in kinds:
                inherit_deps = list(deps)
            if "else" in kinds and frame is not None:
                frame.branches.append(list(self.frontier))
                self.frontier = list(frame.anchor)
                deps = list(frame.anchor)
                condition = Condition(frame.condition.text, not frame.condition.negate, list(frame.anchor))
                frame.condition = condition
            elif cond_text is not None:
                if frame is not None:
                    self._close(frame)
                condition = Condition(cond_text, "unless" in kinds, list(deps))
                frame = _Frame(condition, list(deps))
                self._outside_condition(cond_text, rest)
            elif frame is not None and not frame.has_else and self._guard_only(frame):
                # "if it's over $500, get finance's sign-off, then refund it": the approval is the
                # branch; the refund runs either way (a skipped approval does not stop it)
                frame = None
            elif frame is not None:
                condition = frame.condition
            first_marker = (
                re.search(r"\s+(?:first|beforehand|before\s+that|before\s+anything\s+else)\s*$", item, re.I)
                is not None
            )
            earlier_unit = unit_first if unit_first is not None else prev_unit_first
            pre = self._gerund_before(rest, deps, condition, s_index, g_index)
            if pre is not None:
                rest, deps = pre
            gerund_ref = self._gerund_ref(lead.refs.get("after"), deps, s_index, g_index)
            if gerund_ref is None and "after" in kinds:
                gerund_ref = self._passive_ref(lead.refs.get("after"), deps, s_index, g_index)
            if gerund_ref is not None:
                deps = gerund_ref
            elif "after" in kinds and gate is None:
                self._outside_event(lead.refs.get("after"), rest)
            if gate is not None:
                # the approval comes before this item and the ones joined to it in this clause
                joined = [rest]
                for connector_after, later_item in items[i_index + 1 :]:
                    if connector_after in {"then", "followed"}:
                        break  # "..., then post in #sales": after the gated steps, not asked about
                    joined.append(later_item)
                asked_for = " and ".join([", ".join(joined[:-1]), joined[-1]] if len(joined) > 1 else joined)
                if gate_condition is not None:
                    gate_condition.anchor = list(deps)
                deps = [self._approval(gate, asked_for, deps, gate_condition or condition, s_index, g_index)]
            created = self._item(rest, deps, condition, s_index, g_index, borrowed_verb)
            if created is None:
                continue
            said = rest.strip(" ,")
            for pending in [p for p in self._before_planned if said and p[0].endswith(said)][:1]:
                self._before_planned.remove(pending)
                if created:
                    self._move_before(created, pending[1])
            first_marker = first_marker or (ends_first and i_index == len(items) - 1)
            if created and first_marker and earlier_unit is not None and i_index > 0:
                self._move_before(created, earlier_unit)
            elif len(created) == 1:
                self._approval_before(created[0], first_marker, s_index)
            if created and "side" in kinds:
                # a side step: what comes next still follows the step it hangs off
                self.frontier = [f for f in self.frontier if f not in created]
                self.frontier += [d for d in deps if d not in self.frontier]
            if created and "before" in kinds:
                # "before X, do Y": Y first, then X ("before we charge the card": charge the card)
                said = self._tail_step(lead.refs["before"]) or lead.refs["before"]
                planned = self._planned(said) if said != lead.refs["before"] else None
                if planned is not None and planned not in created:
                    self._move_before(created, planned)  # "charge it. Before we charge it, ..."
                else:
                    later = self._item(said, list(created), condition, s_index, g_index, "")
                    if later:
                        created = [*created, *later]
            if created:
                verb = words(self.masked.plain(rest))
                if verb and stem(verb[0]) in self.verbs:
                    borrowed_verb = verb[0]
                if unit_first is None:
                    unit_first = created[0]
                if first_in_sentence is None:
                    first_in_sentence = created[0]
                seg_drafts.extend(created)
                sinks = [i for i in created if not any(i in self.drafts[j].needs for j in created)]
                told_too = self._messages_together(items, i_index, kinds, last_created, created)
                # after "A and, at the same time, B", what follows waits for both
                par = {"par", "par_ref", "block"} & set(kinds) or par_all or told_too
                chain = [*chain, *sinks] if par else sinks
                last_created = list(created)
        return frame, first_in_sentence

    _AND = re.compile(r"\s+and\s+(?=(?:(?:the|their|its|his|her|our|a|an)\s+)?[a-z])", re.IGNORECASE)

    def _coordinated(self, items: list[tuple[str, str]], s_index: int) -> list[tuple[str, str]]:
        """ "create the customer and their subscription": one verb, two things the catalog makes with
        two actions, so two items, the second after the first as "A and B" always is. Only when each
        half alone is a step of its own action and the whole is one of them ("update the stage and the
        amount" is one action, "email the customer and their manager" one message)."""
        out: list[tuple[str, str]] = []
        for connector, item in items:
            _, rest = mk.read_lead(item, self.lex, self.verbs)
            start = item.rfind(rest) if rest else -1
            tokens = words(self.masked.plain(rest))
            if (
                start < 0
                or not tokens
                or stem(tokens[0]) not in self.verbs
                or tokens[0] in self.lex.message_verbs
            ):
                out.append((connector, item))
                continue
            verb = " ".join(rest.split()[:2])  # "set up the customer and their subscription"
            if not any(pattern.fullmatch(verb.lower()) for pattern, _ in self.lex.multi):
                verb = rest.split()[0]
            for found in self._AND.finditer(rest):
                first, second = rest[: found.start()], f"{verb} {rest[found.end() :]}"
                if self._two_actions(rest, first, second, s_index):
                    out += [(connector, item[:start] + first), ("and", second)]
                    break
            else:
                out.append((connector, item))
        return out

    def _two_actions(self, whole: str, first: str, second: str, s_index: int) -> bool:
        said = len(self.warnings)
        try:
            found = [self._match(self.masked.plain(t), "", s_index) for t in (whole, first, second)]
        finally:
            del self.warnings[said:]  # only a trial: the items are read for real later
        both, one, other = found
        if both is None or one is None or other is None or one[0].name == other[0].name:
            return False
        if one[0].is_core or other[0].is_core:
            return False
        if self.matcher.is_message(one[0]) and self.matcher.is_message(other[0]):
            return False  # "send the invoice and the receipt": one message
        return both[0].name in {one[0].name, other[0].name}

    _INVERTED = re.compile(
        r"(?P<lead>^|,\s*|\b(?:and|then|but)\s+)(?:only\s+(?P<conj>once|after|when|if)|(?P<until>not\s+until))\s+"
        r"(?P<cond>[^,;]+?)\s+(?:should|shall|must|can|could|may|might|will|would|do|does|did)\s+"
        r"(?:we|you|they|i|he|she|someone|anyone|the\s+team)\s+(?=[a-z])",
        re.IGNORECASE,
    )

    _NOT_UNTIL = re.compile(
        r"^(?P<lead>(?:[^;]*?(?:,\s*|\s(?=(?:and|then|but)\s)))?(?:(?:and|then|but)\s+)?)(?:do\s+not|don't|never|we\s+(?:should|must)\s*(?:not|n't)|you\s+"
        r"(?:should|must)\s*(?:not|n't))\s+(?P<rest>[^,;]+?)\s+(?:until|till|before)\s+(?P<cond>[^,;]+)(?P<tail>,.*)?$",
        re.IGNORECASE,
    )
    _MAKE_SURE = re.compile(
        r"^(?P<lead>(?:(?:and|then)\s+)?)(?:make\s+sure|ensure|see\s+to\s+it)\s+(?:that\s+)?"
        r"(?P<obj>(?:the|their|our|his|her|its|a|an)\s+[^,;]+?)\s+(?:is|are|gets|get|has\s+been|have\s+been)\s+"
        r"(?P<verb>[a-z]+(?:ed|en)|paid|sent|sold|built|set\s+up)\b(?P<rest>[^;]*)$",
        re.IGNORECASE,
    )

    def _uninvert(self, seg: str) -> str:
        """ "only once the manager approves should we ship the order", "not until finance signs off
        do we refund it", "don't ship it until the manager approves": the other word orders of "once
        the manager approves, ship the order". "Make sure the customer is billed" is "bill the
        customer"."""

        def plain(m: re.Match[str]) -> str:
            conj = (m.group("conj") or "once").lower()
            return f"{m.group('lead')}{conj} {m.group('cond')}, "

        seg = self._INVERTED.sub(plain, seg)
        found = self._NOT_UNTIL.match(seg)
        ours = found is not None and self._OURS.match(found.group("cond")) is not None
        step = self._our_step(found.group("cond")) if found is not None and ours else None
        if found is not None and step is not None:
            # "don't ship until we've created the invoice": a step of ours comes first, then this one
            seg = f"{found.group('lead')}{step}, then {found.group('rest')}{found.group('tail') or ''}"
        elif found is not None and (
            self._gate(found.group("cond"), unless=False) is not None or self._outside(found.group("cond"))
        ):
            # a person's decision or an outside event ("don't ship until the customer pays"); "don't
            # refund it until Friday" is a date, said as before
            lead, tail = found.group("lead"), found.group("tail") or ""
            seg = f"{lead}once {found.group('cond')}, {found.group('rest')}{tail}"
        sure = self._MAKE_SURE.match(seg)
        if sure is not None:
            verb = self._base_verb(sure.group("verb"))
            if verb is not None:
                seg = f"{sure.group('lead')}{verb} {sure.group('obj')}{sure.group('rest')}"
        return seg

    _OURS = re.compile(r"^(?:we|you|i)\b", re.IGNORECASE)
    _PERFECT = re.compile(r"^(?P<who>we|you|i)(?:'ve|\s+(?:have|had))\s+(?P<verb>[a-z]+)\b", re.IGNORECASE)

    def _our_step(self, cond: str) -> str | None:
        """ "we create the invoice", "we've created the invoice" → "create the invoice" when a step of
        the catalog does it."""
        perfect = self._PERFECT.match(cond)
        base = self._base_verb(perfect.group("verb")) if perfect is not None else None
        if perfect is not None and base is not None:
            cond = f"{perfect.group('who')} {base}{cond[perfect.end() :]}"
        return self._tail_step(cond)

    def _base_verb(self, participle: str) -> str | None:
        """ "billed" → "bill", "set up" → "set up": the instruction a participle is made from, when the
        lexicon knows it."""
        said = participle.lower()
        if said in self.lex.verbs or " " in said:
            return said
        key = stem(said)
        known = sorted(v for v in self.lex.verbs if stem(v) == key)
        return known[0] if known else None

    _TRAILING_FAILURE = re.compile(
        r"\s+(?:only\s+)?(?:if|should|in\s+case)\s+(?P<cond>[^,;]+)$", re.IGNORECASE
    )

    def _failure_first(self, seg: str) -> str:
        """ "refund the charge and notify finance if the payment fails": the failure is said of every
        item joined before it, as in "if the payment fails, refund the charge and notify finance"."""
        found = self._TRAILING_FAILURE.search(seg)
        if found is None or not self.lex.failure.search(found.group("cond")):
            return seg
        body = seg[: found.start()].strip(" ,")
        items = mk.split_items(body, self.lex, self.verbs)
        if len(items) < 2 or any(c not in {"start", "and", "comma"} for c, _ in items):
            return seg  # one item reads it itself; after a "then" it is that item's alone
        if any(mk.read_lead(t, self.lex, self.verbs)[0].kinds for _, t in items):
            return seg
        failure = self.lex.failure.search(found.group("cond"))
        subject = {
            stem(w)
            for w in words(self.masked.plain(found.group("cond")[: failure.start() if failure else 0]))
        }
        if any(subject - _GENERIC & {stem(w) for w in words(self.masked.plain(t))} for _, t in items):
            return seg  # "refund it and post in #support if the refund fails": the refund is done first
        return f"if {found.group('cond')}, {body}"

    _ORDER_SAID = re.compile(
        r"^(?:(?:and|but)\s+)?(?:then|after\s+that|afterwards?|after\s+this|subsequently|next|finally|lastly"
        r"|last|once\s+(?:that's|that\s+is)\s+done|when\s+(?:that's|that\s+is)\s+done|as\s+a\s+last\s+step)\b"
        r"|\b(?:then|afterwards?|after\s+that|after\s+this|next|at\s+the\s+end|as\s+a\s+last\s+step)\s*$",
        re.IGNORECASE,
    )

    def _messages_together(
        self,
        items: list[tuple[str, str]],
        i_index: int,
        kinds: list[str],
        before: list[int],
        created: list[int],
    ) -> bool:
        """ "email them a receipt and text the account manager": two messages paired by "and" with no
        order said between them go out together, both after what came before them, unless the words
        order them ("and after that text the manager"). A list ("export it, post it in #revenue and
        email it") is a sequence in the order said, so a comma in the group keeps the order. Rewires
        the new message."""
        connector, item = items[i_index]
        if connector != "and" or len(created) != 1 or not before or set(kinds) - {"seq"}:
            return False
        start = i_index
        while start > 0 and items[start][0] in {"and", "comma"}:
            start -= 1
        end = i_index + 1
        while end < len(items) and items[end][0] in {"and", "comma"}:
            end += 1
        if any(c == "comma" for c, _ in items[start + 1 : end]):
            return False
        if self._ORDER_SAID.search(item.strip(" ,")):
            return False
        new = self.drafts[created[0]]
        earlier = [self.drafts[i] for i in before]
        if not all(self.matcher.is_message(d.action) for d in [*earlier, new]):
            return False
        # it follows the message before it (and that one's partners: "email, text and post")
        partners = [self.drafts[i] for i in new.needs]
        if earlier[-1] not in partners or any(d.condition is not new.condition for d in earlier):
            return False
        if any(not self.matcher.is_message(d.action) or d.needs != earlier[-1].needs for d in partners):
            return False
        new.needs = list(earlier[-1].needs)
        self.frontier += [d.index for d in earlier if d.index not in self.frontier]
        return True

    _BEFORE_TAIL = re.compile(
        r"(?<=[\w')⟧])(?<!\band)(?<!\bbut)(?<!\bthen)\s+(?:(?:but\s+)?only\s+)?"
        r"(?:before|prior\s+to|ahead\s+of|in\s+advance\s+of)\s+(?P<tail>[^,;]+)",
        re.IGNORECASE,
    )
    _TAIL_SUBJECT = re.compile(
        r"^(?:(?:we|you|they|i|he|she|someone|anyone|anybody|the\s+team|our\s+team)\s+"
        r"(?:(?:can|could|will|may|might|should|do|actually|ever|go\s+ahead\s+and|go\s+and|get\s+to)\s+)*)",
        re.IGNORECASE,
    )
    _TAIL_NOUN = re.compile(r"^(?:the|a|an|any|their|our|its|this|that)\s+(?P<noun>[a-z]+)\b", re.IGNORECASE)
    _VAGUE_TAIL = re.compile(
        r"^(?:go|going|goes|move|moving|proceed|proceeding|continue|continuing|do|doing|start|starting|begin"
        r"|beginning|act|acting|commit|committing|touch|touching|finish|finishing|anything|any|everything)\b"
        r"(?:\s+(?:on|ahead|further|forward|live|home|anything|any\s+further|with\s+(?:it|this|that|anything|the\s+rest)"
        r"|that|this|it|out|through|anything\s+else|else))*\s*$",
        re.IGNORECASE,
    )

    _TIME_NOUNS = frozenset(
        "end start beginning close open finish deadline cutoff launch weekend holidays holiday break".split()
    )

    def _before_tails(self, seg: str) -> str:
        """ "the manager has to approve before we charge the card, then email the receipt": the
        step said after "before we" / "prior to" / "ahead of" comes next, so the clause reads as
        "the manager has to approve, then charge the card, then email the receipt". A tail that names
        no step ("before we go further", "before anything goes out") is left for the filler."""
        out, last = [], 0
        for found in self._BEFORE_TAIL.finditer(seg):
            step = self._tail_step(found.group("tail"))
            if step is None:
                continue
            head = seg[last : found.start()]
            earlier = self._planned(step)
            if earlier is not None:
                # "charge the card. The manager has to approve before we charge it": that charge
                self._before_planned.append((head.strip(" ,"), earlier))
                out.append(head)
                last = found.end()
                continue
            limit = ph.threshold(step)
            if limit is not None and self.lex.approval.search(head) and not ph.threshold(head):
                # "approve before charging the card for more than $1,000": the approval is asked
                # only above the amount; the charge runs either way
                said, rest = limit
                verb = said.split()[0] if said.split() else ""
                if not words(self.masked.plain(rest)) and stem(verb) in self.verbs:
                    said, rest = said[len(verb) :].strip(), verb  # "refund anything over $500"
                head, step = f"{head} if it is {said}", rest
            out.append(f"{head}, then {step}")
            last = found.end()
        if not out:
            return seg
        return "".join(out) + seg[last:]

    def _planned(self, step: str) -> int | None:
        """The step already planned that `step` names again ("charging" after "charge the card")."""
        plain = self.lex.without_recipient(self.masked.plain(step))
        best = self.matcher.rank(self._weighted(plain), 1, verb=plain)
        if not best:
            return None
        same = [d.index for d in self.drafts if d.action.name == best[0][0].name]
        return same[-1] if same else None

    def _tail_step(self, tail: str) -> str | None:
        """The step "before we charge the card" / "prior to charging it" / "ahead of the refund"
        names, as an instruction ("charge the card", "charging it", "refund"); None when the words
        name no step of the catalog ("before we go further", "before noon")."""
        tail = tail.strip()
        subject = self._TAIL_SUBJECT.match(tail)
        step = tail[subject.end() :] if subject else tail
        if self._VAGUE_TAIL.match(step):
            return None
        tokens = words(self.masked.plain(step))
        if not tokens:
            return None
        if stem(tokens[0]) not in self.verbs and step != tail:
            return None  # "before they notice", "before I leave": a verb no action is known by
        if stem(tokens[0]) not in self.verbs:
            noun = self._TAIL_NOUN.match(step)
            if (
                noun is None
                or stem(noun.group("noun")) not in self.verbs
                or noun.group("noun").lower() in self._TIME_NOUNS
                or re.match(r"\s+of\b", step[noun.end() :])
            ):
                return None
            # "ahead of the refund": the refund is the step ("before the end of May" is a time)
            step = noun.group("noun") + step[noun.end() :]
        elif step == tail and not tokens[0].endswith("ing"):
            return None  # "before noon", "before sign-off": no subject and no gerund, not a step
        plain = self.lex.without_recipient(self.masked.plain(step))
        if self.lex.approval.search(plain):
            return None
        best = self.matcher.rank(self._weighted(plain), 1, verb=plain)
        if not best or best[0][1] < MATCH_THRESHOLD:
            return None
        return step

    def _deps(
        self,
        kinds: list[str],
        refs: dict[str, str],
        s_index: int,
        first_in_sentence: int | None,
        prev_unit_first: int | None,
        inherit: list[int] | None,
        seg_drafts: list[int] | None,
        frame: _Frame | None,
        unit_first: int | None = None,
        chain: list[int] | None = None,
    ) -> list[int]:
        if seg_drafts:  # "A, B and C, all at the same time": they share where A started
            return list(self.drafts[seg_drafts[0]].needs)
        if "par_ref" in kinds:
            found = self.resolve(refs["par_ref"])
            if found:
                deps: list[int] = []
                for i in found:
                    deps += [d for d in self.drafts[i].needs if d not in found and d not in deps]
                return deps
            kinds = [*kinds, "block"]
        if "block" in kinds:
            anchor = first_in_sentence
            if anchor is None:
                earlier = [d for d in self.drafts if d.sentence == s_index - 1]
                anchor = earlier[0].index if earlier else None
            return list(self.drafts[anchor].needs) if anchor is not None else []
        if "par" in kinds:
            partner = unit_first if unit_first is not None else prev_unit_first
            if partner is not None:
                return list(self.drafts[partner].needs)
            if self.drafts:
                last = self.drafts[-1]
                unit = [d for d in self.drafts if d.unit == last.unit]
                return list(unit[0].needs)
            return []
        if inherit is not None and not ({"after", "seq"} & set(kinds)):
            return list(inherit)
        if "after" in kinds:
            found = self.resolve(refs["after"])
            if found:
                return [self._unit_tail(i) for i in found]
        if chain and not ({"after", "if", "unless", "else", "join"} & set(kinds)):
            # "upload it, then email the link": the next step of this clause's chain, not of
            # every branch still open elsewhere
            return list(chain)
        return list(self.frontier)

    def _unit_tail(self, index: int) -> int:
        """ "set up billing" names the customer, but "create the customer and subscribe them" is
        one piece of work: wait for its last step."""
        unit = self.drafts[index].unit
        tail = index
        for d in self.drafts:
            if d.unit == unit and d.index > tail and tail in d.needs:
                tail = d.index
        return tail

    def _move_before(self, created: list[int], later: int) -> None:
        """ "book the hotel, but install the app first": the new step goes before `later`."""
        earlier = self.drafts[later]
        for i in created:
            self.drafts[i].needs = list(earlier.needs)
        for d in self.drafts:
            if (d.index >= later and d.index not in created and later in d.needs) or d.index == later:
                if d.index == later:
                    d.needs = list(created)
        self.frontier = [f for f in self.frontier if f not in created]
        if later not in self.frontier and not any(later in d.needs for d in self.drafts):
            self.frontier.append(later)

    def _gerund_before(
        self, rest: str, deps: list[int], condition: Condition | None, s_index: int, g_index: int
    ) -> tuple[str, list[int]] | None:
        """ "book a flight, after installing the app" / "after getting the weather, print it": the
        gerund names a step of its own that comes first."""
        m = re.search(r"(?:^|,?\s+)(?:after|once|when|upon)\s+([a-z]+ing)\b(.*)$", rest, re.IGNORECASE)
        if not m or ph.WAIT_PREFIX_RE.match(rest) or stem(m.group(1).lower()) not in self.verbs:
            return None
        clause = m.group(1) + m.group(2)
        main = rest[: m.start()].strip(" ,")
        if not main:
            return None
        created = self._item(clause, deps, condition, s_index, g_index, "")
        if not created:
            return None
        return main, [created[-1]]

    def _gerund_ref(self, ref: str | None, deps: list[int], s_index: int, g_index: int) -> list[int] | None:
        """ "after getting the weather, print it": when the gerund names no earlier step, it is a
        step of its own that comes first."""
        if not ref or not re.match(r"[a-z]+ing\b", ref, re.IGNORECASE):
            return None
        if stem(ref.split()[0].lower()) not in self.verbs:
            return None
        plain = self.masked.plain(ref)
        told = self.lex.without_recipient(plain)
        best = self.matcher.rank(self._weighted(told), 1, verb=told)
        if not best or best[0][1] < MATCH_THRESHOLD:
            return None
        if any(self.drafts[i].action.name == best[0][0].name for i in self.resolve(ref)):
            return None
        basis = [d for d in deps if not any(d == self._unit_tail(f) for f in self.resolve(ref))] or deps
        created = self._item(ref, basis, None, s_index, g_index, "")
        return [created[-1]] if created else None

    _PASSIVE = re.compile(
        r"^(?P<obj>(?:the|their|our|his|her|a|an)\s+[\w\s'-]+?)\s+(?:is|are|was|were|has\s+been|have\s+been"
        r"|gets|get|got)\s+(?P<verb>[a-z]+(?:ed|en)|paid|sent|sold|held|set\s+up|built|shut)$",
        re.IGNORECASE,
    )

    def _passive_ref(self, ref: str | None, deps: list[int], s_index: int, g_index: int) -> list[int] | None:
        """ "once the card is charged, email the receipt" with no charge planned: the charge is a
        step of its own that comes first (not words to drop)."""
        if not ref:
            return None
        found = self._PASSIVE.match(self.masked.plain(ref).strip())
        if found is None or self.resolve(ref) or stem(found.group("verb").split()[0]) not in self.verbs:
            return None
        said = f"{found.group('verb')} {found.group('obj')}"
        plain = self.masked.plain(said)
        best = self.matcher.rank(self._weighted(plain), 1, verb=plain)
        if not best or best[0][1] < MATCH_THRESHOLD or not self.matcher.verb_fits(best[0][0], plain):
            return None  # "once the invoice is paid": what someone else does, not a step to plan
        created = self._item(said, deps, None, s_index, g_index, "")
        return [created[-1]] if created else None

    _NOT_AN_EVENT = frozenset(
        "it that this they them those these both all everything which what he she each either".split()
    )

    _TIMES = frozenset(
        "monday tuesday wednesday thursday friday saturday sunday weekend weekday tomorrow tonight today"
        " noon midnight morning afternoon evening eod eow eom january february march april may june july"
        " august september october november december".split()
    )

    def _time_word(self, token: str) -> bool:
        token = token.lower()
        return (
            token in self._TIMES
            or (token in self.lex.numbers and token not in {"a", "an", "one", "single"})
            or token.rstrip("s") in self.lex.durations
        )

    def _outside(self, ref: str | None) -> bool:
        """ "the customer pays": something said to happen that no step of this plan does (not a time,
        an amount, nor a step planned)."""
        if not ref:
            return False
        plain = self.masked.plain(ref).strip()
        tokens = words(plain)
        return not (
            len(tokens) < 2
            or re.split(r"'", tokens[0])[0] in self._NOT_AN_EVENT
            or re.search(r"\d", self.masked.unmask(ref))
            or any(self._time_word(t) for t in tokens)  # "after two weeks", "when Friday comes"
            or not self._concept_set(plain)
            or self.resolve(ref)
            or self._succeeded(ref) is not None  # "once the payment succeeds": the charge planned
        )

    def _outside_event(self, ref: str | None, rest: str) -> bool:
        """ "only after the customer pays should we ship": the customer paying is nothing this plan
        does, so the step cannot wait for it. Say so, and how it could be waited for, rather than
        plan the step as if the words were not there."""
        if ref is None or not self._outside(ref):
            return False
        self.warnings.append(
            f'nothing in this plan makes "{self._show(ref)}" happen, so "{self._show(rest.strip(" ,"))}" '
            f"does not wait for it: {self._how_to_wait(ref)}"
        )
        return True

    _PARTICIPLE = re.compile(
        r"^(?:[a-z]+(?:ed|en)|paid|sent|sold|held|built|shut|set|made|done|given|won|lost)$"
    )
    _BE = frozenset("is are was were gets get got has have had been being".split())

    def _outside_condition(self, cond: str, rest: str) -> None:
        """ "if the customer pays, ship": an event no step makes happen, read as a yes/no run input.
        It may stay one, but the person must know the plan does not wait for the event. A state ("if
        the customer is on the enterprise plan") is data, said with no verb of doing."""
        tokens = words(self.masked.plain(cond))
        for i, token in enumerate(tokens[1:], start=1):
            if token in self._BE:
                after = [t for t in tokens[i + 1 : i + 3] if t not in self._BE][:1]
                event = bool(after) and self._PARTICIPLE.match(after[0]) is not None
                break
            if mk.said_of_subject(" ".join(tokens[i:]), self.verbs):
                event = True
                break
        else:
            return
        if not event or not self._outside(cond):
            return
        self.warnings.append(
            f'nothing in this plan makes "{self._show(cond)}" happen, so "{self._show(rest.strip(" ,"))}" '
            "runs on a yes/no run input given when the run starts, not when it happens: to act on the "
            f"event itself, {self._how_to_wait(cond)}"
        )

    def _how_to_wait(self, event: str) -> str:
        return (
            f'start the workflow when it happens (a webhook trigger: "when {self._show(event)}, ..."), '
            "ask a person to confirm it first (an approval), or add a wait"
        )

    def _parallelise(self, group: list[Draft]) -> None:
        if len(group) < 2:
            return
        base = list(group[0].needs)
        members = {d.index for d in group}
        for draft in group[1:]:
            draft.needs = list(base)
        self.frontier = [f for f in self.frontier if f not in members] + sorted(members)

    # -- one item → drafts

    def _item(
        self,
        rest: str,
        deps: list[int],
        condition: Condition | None,
        s_index: int,
        g_index: int,
        borrowed_verb: str,
        gate: Gate | None = None,
    ) -> list[int] | None:
        text = rest.strip(" ,")
        attempts = timeout = None
        for source in (text, *self.masked.pieces(text, "P")):
            found = ph.find_retry(source, self.lex)
            if found:
                attempts = int(found.value)
                if source is text:
                    text = (text[: found.span[0]] + text[found.span[1] :]).strip(" ,")
                break
        found_t = ph.find_timeout(text, self.lex)
        if found_t:
            timeout = found_t.value
            text = (text[: found_t.span[0]] + text[found_t.span[1] :]).strip(" ,")
        for_each = None
        loop = ph.FOR_EACH_RE.search(text)
        if loop and not ph.LOG_RE.search(text):
            for_each = loop.group(1)
            text = (text[: loop.start()] + text[loop.end() :]).strip(" ,")
        wait_prefix = ph.WAIT_PREFIX_RE.match(text)
        wait_text = ""
        waited_from = ""
        if wait_prefix is not None:
            # "sixty days after that, delete it": a wait, then the action
            wait_text = wait_prefix.group("dur")
            remainder = text[len(wait_text) :].strip()
            after = re.match(r"^(?:later|after\s+(?:that|this|it|which))\s*,?\s*", remainder, re.IGNORECASE)
            if after:
                text = remainder[after.end() :]
            elif remainder.lower().startswith("after"):
                split = mk._verb_split(remainder[5:], self.verbs)
                text = split[1] if split else remainder
            else:
                text = remainder
        else:
            wait_prefix = self._WAIT_AFTER.search(text)
            said = (wait_prefix.group("dur") or wait_prefix.group("dur2")) if wait_prefix else None
            told = text[: wait_prefix.start()] if wait_prefix else ""
            if re.search(
                r"\b(?:that|saying|about|which|who|because|since|when|where|whether)\b|⟦Q", told, re.I
            ):
                said = None  # "email them that their trial ends in three days": what is said, not a wait
            if wait_prefix is not None and said and ph.duration_seconds(said, self.lex) is not None:
                # "remind them in a week", "follow up two days later": a wait, then the action
                wait_text, waited_from = said, text
                text = text[: wait_prefix.start()].strip(" ,")
            else:
                wait_prefix = None
        plain = self.masked.plain(text)
        if not words(plain):
            if attempts and self.drafts:
                self._set_retry(self.drafts[-1], attempts)
            return None
        gate_condition: Condition | None = None
        said_here: Condition | None = None
        trailing_if = re.search(r"\s+(?:only\s+)?(?:if|unless|should)\s+(.+)$", text, re.IGNORECASE)
        trailing_once = re.search(
            r"\s+(?:(?:but\s+)?only\s+)?(?:once|when|after|as\s+soon\s+as)\s+(.+)$", text, re.IGNORECASE
        )
        if trailing_if is None and trailing_once is not None and gate is None and condition is None:
            # "refund it once finance signs off": the approval comes first
            gate = self._gate(trailing_once.group(1), unless=False)
            if gate is not None:
                text = text[: trailing_once.start()]
                plain = self.masked.plain(text)
                gate = None if self._open_approval() else gate
            elif self._outside_event(trailing_once.group(1), text[: trailing_once.start()]):
                # "create the account once the contract is signed": nothing here signs it, and the
                # words about it say nothing of which action this is
                text = text[: trailing_once.start()]
                plain = self.masked.plain(text)
        if trailing_if and condition is None and self.lex.failure.search(trailing_if.group(1)):
            # "notify support if the refund fails": about another step's outcome, not an input
            cond_text, before = trailing_if.group(1), text[: trailing_if.start()]
            if self._failure_clause(cond_text, before, s_index, g_index) or self._unplanned_failure(
                cond_text, before
            ):
                return []
        elif trailing_if and condition is None:
            unless = text[trailing_if.start() :].strip().lower().startswith("unless")
            both = None if unless else self._gate_and_data(trailing_if.group(1))
            trailing_gate = both[0] if both else self._gate(trailing_if.group(1), unless=unless)
            if unless and trailing_gate is None and self._gate(trailing_if.group(1), unless=False):
                negated = self._NEGATED.match(text)
                if negated is None:  # "refund it unless the manager approves"
                    self._unplanned_unless(trailing_if.group(1), text[: trailing_if.start()])
                    return []
                # "don't refund it unless the manager approves": only with the approval
                trailing_gate = self._gate(trailing_if.group(1), unless=False)
                text = text[negated.end() :]
                trailing_if = re.search(r"\s+unless\s+(.+)$", text, re.IGNORECASE) or trailing_if
            if both is not None:
                # "charge the card if the order is over $5,000 and finance signs off"
                gate_condition = both[1]
                gate_condition.anchor = list(deps)
            if trailing_gate is not None and gate is None:
                gate = None if self._open_approval() else trailing_gate
            elif trailing_gate is None:
                condition = Condition(trailing_if.group(1), unless, list(deps))
                said_here = condition
                self._outside_condition(condition.text, text[: trailing_if.start()])
            text = text[: trailing_if.start()]
            plain = self.masked.plain(text)
        gate_phrase = ph.GATE_PHRASE_RE.search(text)
        if gate_phrase is not None and gate is None and self._first_word_verb(text[: gate_phrase.start()]):
            # "refund it with the manager's approval"
            who = gate_phrase.group("who2") or gate_phrase.group("who")
            gate = Gate(self._approver(who) if who else None, gate_phrase.group(0).strip())
            if said_here is not None and not said_here.negate and ph.threshold(said_here.text):
                # "refund it with finance's approval if it's over $500": the approval's condition
                gate_condition, condition = said_here, None
            text = text[: gate_phrase.start()]
            plain = self.masked.plain(text)
        until: tuple[str, str] | None = None
        dated = ph.DATE_RE.search(text)
        with_date = text
        if dated is not None:
            until = self._until(dated, for_wait=bool(ph.WAIT_RE.match(self.masked.plain(text).lower())))
            text = (text[: dated.start()] + " " + text[dated.end() :]).strip(" ,")
            plain = self.masked.plain(text)
        kind, extra = self._core_kind(text, plain)
        approvers: list[str] | None = None
        if kind == "core.approval" and condition is None:
            # "get a manager's approval for refunds over $1,000": asked only above the amount
            limit = ph.threshold(text)
            if limit is not None:
                condition = Condition(limit[0], False, list(deps))
                approvers = self._approvers_said(limit[1])
        if kind == "core.approval" and approvers is None:
            # "get approval from finance", "the manager has to approve": the same approvers an
            # approval with a limit names ("finance's approval for refunds over $500")
            approvers = self._approvers_said(text)
        if kind is None and until is not None and ph.WAIT_RE.match(plain.lower()):
            kind, extra = "core.wait", None  # "wait until 2026-12-01"
        specs: list[tuple[ActionSpec, float, str | None]] = []
        if kind is not None:
            specs.append((self.catalog[kind], 1.0, None))
        else:
            action = self._match(plain, borrowed_verb, s_index)
            if action is None:
                if attempts and self.drafts:
                    self._set_retry(self.drafts[-1], attempts)
                return []
            spec, score = action
            quoted = self._listed_quotes(text)
            copies = len(quoted) if len(quoted) >= 2 else (2 if self._repeated_object(plain) else 1)
            for n in range(copies):
                specs.append((spec, score, quoted[n] if len(quoted) >= 2 else None))
        if waited_from and specs and dated_input(specs[0][0]):
            # "book the meeting in two weeks": the meeting's own time, not a wait before booking it
            wait_prefix, text = None, waited_from
        pre: list[int] = []
        if until is not None and kind != "core.wait":
            topic = dated is not None and re.search(
                r"\b(?:about|regarding|concerning|discussing|on\s+the\s+(?:topic|subject)\s+of)\b",
                with_date[: dated.start()],
                re.IGNORECASE,
            )
            if dated_input(specs[0][0]) or topic:
                # "book a car on August 1, 2023": the booking's date, not a wait; "a meeting about
                # the forecast on May 15": the date is part of what the meeting is about
                text, until = with_date, None
            elif not until[0]:
                # "by Friday" is a deadline; "on December 1" has no year
                self.warnings.append(
                    f'"{until[1]}" was not planned: no step waits for it (give a full date such as '
                    "2026-12-01 to wait until, or add a `core.wait` step with `until:`)"
                )
                until = None
        if gate is not None:
            pre.append(self._approval(gate, text, deps, gate_condition or condition, s_index, g_index))
        if until is not None and kind != "core.wait":
            wait = Draft(
                len(self.drafts),
                self.catalog["core.wait"],
                "wait until " + re.sub(r"^\S+\s+(?:or\s+after\s+|on\s+)?", "", until[1]),
                pre[-1:] or list(deps),
                condition,
                sentence=s_index,
                segment=g_index,
                unit=self._unit,
            )
            wait.until = until[0]
            self._note_utc(until)
            self.drafts.append(wait)
            pre.append(wait.index)
        if pre:
            self.frontier = [f for f in self.frontier if f not in deps]
            deps = [pre[-1]]
        created: list[int] = []
        for spec, score, quoted_item in specs:
            draft = Draft(
                len(self.drafts),
                spec,
                text,
                list(deps),
                condition,
                attempts,
                timeout,
                sentence=s_index,
                segment=g_index,
                unit=self._unit,
                score=score,
                quoted=quoted_item,
            )
            draft.approvers = approvers
            if spec.name == "core.wait":
                draft.wait_s = extra if isinstance(extra, float) else None
                draft.message = extra if isinstance(extra, str) else None
                if until is not None and draft.wait_s is None and until[0]:
                    draft.until = until[0]
                    self._note_utc(until)
            elif isinstance(extra, str):
                draft.message = extra
            if for_each:
                draft.for_each = for_each
            self.drafts.append(draft)
            created.append(draft.index)
        if wait_prefix is not None and specs and specs[0][0].name != "core.wait":
            seconds = ph.duration_seconds(wait_text, self.lex)
            wait = Draft(
                len(self.drafts),
                self.catalog["core.wait"],
                wait_text,
                list(deps),
                condition,
                sentence=s_index,
                segment=g_index,
                unit=self._unit,
            )
            wait.wait_s = seconds.value if seconds else None
            self.drafts.append(wait)
            for i in created:
                self.drafts[i].needs = [wait.index]
            self.frontier = [f for f in self.frontier if f not in deps] + [wait.index]
            created = [wait.index, *created]
            deps = [wait.index]
        self.frontier = [f for f in self.frontier if f not in deps and f not in created]
        self.frontier += [
            i for i in created if not (wait_prefix is not None and i == created[0] and len(created) > 1)
        ]
        return [*pre, *created]

    _WAIT_AFTER = re.compile(
        r"\s+(?:(?:in|after)\s+(?P<dur>(?:\d+|an?|one|two|three|four|five|six|seven|ten|a\s+couple\s+of|a\s+few)"
        r"[\s-]+(?:minutes?|hours?|days?|weeks?|months?))(?:\s+(?:time|from\s+now))?"
        r"|(?P<dur2>(?:\d+|an?|one|two|three|four|five|six|seven|ten)[\s-]+(?:minutes?|hours?|days?|weeks?|months?))"
        r"\s+later)\s*$",
        re.IGNORECASE,
    )

    def _core_kind(self, text: str, plain: str) -> tuple[str | None, float | str | None]:
        """`core.*` built-ins recognised by their phrases, with their main value."""
        low = plain.lower()
        if ph.WAIT_RE.match(low) and not self.lex.approval.search(low):
            found = ph.duration_seconds(low, self.lex)
            if found is not None:
                return "core.wait", found.value
            if ph.NEXT_TIME_RE.search(low):
                return "core.wait", 86400.0
        if ph.NEXT_TIME_RE.match(low):
            return "core.wait", 86400.0
        if ph.FAIL_RE.match(low):
            return "core.fail", self._message(text) or plain
        if ph.LOG_RE.search(low):
            return "core.log", self._message(text, log=True) or plain
        if self.lex.approval.search(low) and not re.match(r"^(?:authori[sz]e|capture)\b", low):
            return "core.approval", self.masked.unmask(text)
        return None, None

    def _message(self, text: str, log: bool = False) -> str | None:
        quoted = self.masked.pieces(text, "Q")
        if quoted:
            return quoted[0].strip("'\"")
        found = ph.MESSAGE_RE.search(text)
        if found:
            return self.masked.unmask(found.group(1)).strip(" .")
        if log:
            body = re.sub(
                r"^(?:note|write|record|log|add|put|recording|noting|writing)\s+", "", text, flags=re.I
            )
            body = ph.LOG_RE.sub("", body)
            body = re.sub(r"\s+(?:in|to|into)\s*$", "", body.strip())
            return self.masked.unmask(body).strip(" .") or None
        return None

    _SPLIT_PARTICLE = re.compile(
        r"^(?P<verb>[A-Za-z]+)\s+(?P<obj>(?:the|a|an|our|their|his|her|this|that|my|your)\s+[\w-]+(?:\s+[\w-]+)??)"
        r"\s+(?P<particle>up|off|out|down|back|in|over|on)\b(?P<rest>.*)$",
        re.IGNORECASE,
    )

    def _phrasal(self, plain: str) -> str:
        """ "sign the customer up for the Pro plan" → "sign up the customer for the Pro plan": a
        phrasal verb split by its object means what it means whole ("sign up" is not signing)."""
        found = self._SPLIT_PARTICLE.match(plain.strip())
        if found is None:
            return plain
        verb, particle = found.group("verb"), found.group("particle")
        phrase = f"{verb.lower()} {particle.lower()}"
        if not any(pattern.fullmatch(phrase) for pattern, _ in self.lex.multi):
            return plain
        return f"{verb} {particle} {found.group('obj')}{found.group('rest')}"

    def _match(self, plain: str, borrowed_verb: str, s_index: int) -> tuple[ActionSpec, float] | None:
        plain = self._phrasal(plain)
        tokens = words(plain)
        wanted = bool(_WANT.match(plain))
        question = bool(_QUESTION.match(plain))
        starts = bool(tokens) and stem(tokens[0]) in self.verbs
        own_verb = bool(tokens) and tokens[0] in self.imperatives
        query = plain
        if not starts and borrowed_verb and not question and not self._is_statement(tokens):
            if borrowed_verb.lower() in self.lex.message_verbs and self._MEDIUM_SAID.search(plain):
                # "text the customer a code and the manager by email": this one names its own medium
                borrowed_verb = "notify"
            query = f"{borrowed_verb} {plain}"
            starts = True
        if not (starts or wanted or question):
            self.warnings.append(f'read "{self._show(plain)}" as background, not a step')
            return None
        if starts and self._is_statement(tokens) and not _MODAL.search(plain) and self._has_subject(plain):
            self.warnings.append(f'read "{self._show(plain)}" as background, not a step')
            return None
        told = self.lex.without_recipient(query)  # "notify the customer": not a customer record
        named = self._named_object(plain)
        ranked = self.matcher.rank(self._weighted(told) + (" company" if named else ""), 3, verb=told)
        if not ranked:
            return None
        spec, score = ranked[0]
        unknown = self._unknown_object(query)
        if unknown and any(p.search(query.lower()) for p, _ in self.lex.phrases):
            unknown = None  # an idiom ("send it by FedEx") says what is meant beyond the verb
        if unknown:
            # the verb alone matched ("send a fax"): honest only if the words around it fit too
            # a weak, undecided match whose object nobody knows ("send a fax") is not a match
            margin = score - ranked[1][1] if len(ranked) > 1 else score
            unknown = unknown if margin < 0.1 or score < 0.5 else None
        if score < MATCH_THRESHOLD or unknown:
            what = f'"{unknown}"' if unknown else f'"{self._show(plain)}"'
            self.warnings.append(
                f"no action in this catalog does {what}; closest: {spec.name} ({score:.2f}); "
                "left out of the plan"
            )
            return None
        if own_verb and not self.matcher.verb_relates(spec, plain):
            # a close runner-up that does what the verb says ("provision the account" / a workspace
            # provisioned, not the CRM account the noun found)
            fitting = [
                (a, s)
                for a, s in ranked[1:]
                if s >= MATCH_THRESHOLD
                and s >= score - _RUNNER_UP
                and self.matcher.verb_is(a, told)
                # "get flowers for the customer": "get" is the rates' own verb, but not of flowers
                and (tokens[0] not in self.lex.light_verbs or self.matcher.verb_relates(a, plain))
            ]
            if not fitting:
                # "reply to the customer": the customer found billing records; a public reply on a
                # ticket is what the verb says, a little further down
                fitting = [
                    (a, s)
                    for a, s in ranked[1:]
                    if s >= max(MATCH_THRESHOLD, score - _RUNNER_UP) and self.matcher.verb_relates(a, plain)
                ]
            if fitting:
                return self._default_medium(fitting[0][0], fitting[0][1], plain), fitting[0][1]
            # "order pizza for the team": only "team" found the chat post; nothing here orders
            said = self.matcher.light_object(plain) if tokens[0] in self.lex.light_verbs else []
            head = " ".join(said)
            why = (
                f'has nothing to do with "{head}"'
                if head
                else f'does not "{tokens[0]}" (only the other words matched)'
            )
            self.warnings.append(
                f'no action in this catalog does "{self._show(plain)}": the closest, {spec.name} '
                f"({score:.2f}), {why}; left out of the plan"
            )
            return None
        if (
            stem(tokens[0]) in self._generic_verbs
            and not self.matcher.is_message(spec)
            and not self.matcher.object_relates(spec, told)
        ):
            # "open a ticket" with no ticket action: only "open" found the workspace made
            for other, other_score in ranked[1:]:
                if (
                    other_score >= max(MATCH_THRESHOLD, score - _RUNNER_UP)
                    and self.matcher.object_relates(other, told)
                    and self.matcher.verb_relates(other, plain)
                ):
                    return other, other_score  # a close runner-up made of the same thing
            object_said = " ".join(self.matcher.light_object(told, people=True))
            self.warnings.append(
                f'no action in this catalog does "{self._show(plain)}": the closest, {spec.name} '
                f'({score:.2f}), has nothing to do with "{object_said}"; left out of the plan'
            )
            return None
        unnamed = self.matcher.rank(self._weighted(told), 1, verb=told) if named else ranked
        if named and unnamed and unnamed[0][0].name != spec.name:
            self.warnings.append(
                f'read "{named}" as a company\'s name, so "{self._show(plain)}" is {spec.name}; if it '
                f'is a person or something else, say what it is ("{self._show(plain)} as a contact")'
            )
        return self._default_medium(spec, score, plain), score

    def _named_object(self, plain: str) -> str | None:
        """ "add Initech to the CRM": a name no catalog word knows, made or put somewhere, is read as
        a company's (as literals fill it), so "company" is matched too: its account, not a note."""
        named = object_name(plain)
        verb = words(plain)[:1]
        if named is None or not verb or verb[0] not in self.lex.generic_verbs | self.lex.making_verbs:
            return None
        if re.search(rf"{re.escape(named)}\s+as\b", plain):
            return None  # "create Raj as its admin": the words say what the name is
        vocab = self.matcher._index.words.vocabulary_
        known = [w for w in words(named) if stem(w) in vocab or w in self.lex.single]
        return None if known else named

    _ANY_MEDIUM = re.compile(
        r"\b(?:e-?mail|mail|inbox|text|sms|phone|mobile|cell|chat|slack|teams|channel|call|fax|post|letter)\b|[#⟦@]",
        re.IGNORECASE,
    )

    def _default_medium(self, spec: ActionSpec, score: float, plain: str) -> ActionSpec:
        """ "send the customer a recap", "send them the agenda": a message that names no medium goes to
        a person by email (as "notify the customer" does), not by whichever medium scored a hair higher."""
        if not self.matcher.is_message(spec) or self._ANY_MEDIUM.search(self.masked.unmask(plain)):
            return spec
        mail = set(self.lex.single.get("email", ()))
        if mail & set(self.lex.concepts(" ".join(spec.name.split(".")))):
            return spec
        for other, other_score in self.matcher.rank(self._weighted(plain), 5, verb=plain):
            named = set(self.lex.concepts(" ".join(other.name.split("."))))
            if (
                other_score >= max(MATCH_THRESHOLD, score - 0.1)
                and self.matcher.is_message(other)
                and mail & named
            ):
                return other
        return spec

    _MEDIUM_SAID = re.compile(
        r"\b(?:by|via|over|on|in|through|per)\s+(?:an?\s+|the\s+)?(?:e-?mail|mail|text|sms|phone|slack|chat|teams"
        r"|channel)\b|#",
        re.IGNORECASE,
    )

    @staticmethod
    def _has_subject(plain: str) -> bool:
        """ "Invoice INV-33 went out": a capitalised opening followed by a name or id is a subject,
        where "Email the admin ..." opens with a verb and a determiner."""
        raw = plain.split()
        return (
            len(raw) > 1
            and raw[0][:1].isupper()
            and (raw[1][:1].isupper() or any(c.isdigit() for c in raw[1]))
        )

    def _weighted(self, query: str) -> str:
        """The query with its direct object said twice: "raise the invoice against customer X" is
        about the invoice, the thing right after the verb. Not after a verb that names a medium
        ("email the invoice", "text them the tracking number"): that object is what the message is
        about, and the verb says what is done."""
        first = words(query)[:1]
        if first and first[0] in self.lex.message_verbs and first[0] != "send":
            return query
        head = re.split(
            r"\s+(?:for|to|from|against|with|in|on|at|by|under|into|as|so|that|via|using|about|of)\s+",
            query,
            maxsplit=1,
        )[0]
        obj = [w for w in re.findall(r"[A-Za-z][A-Za-z-]*", head)[1:]]
        return f"{query} {obj[-1]}" if obj else query

    def _is_statement(self, tokens: list[str]) -> bool:
        return any(t in self.lex.statement_words for t in tokens[1:5])

    def _unknown_object(self, query: str) -> str | None:
        """The object of the verb when neither the catalog nor the lexicon knows any of its words
        (names, capitalised, are not objects: "email Dana")."""
        raw = re.findall(r"[A-Za-z0-9][\w'-]*", query)[1:]
        tokens = [
            t.lower()
            for t in raw
            if not t[0].isupper() and t.lower() not in _GENERIC and t.lower() not in _STOP
        ]
        content = tokens[:2]
        if not content:
            return None
        vocab = self.matcher._index.words.vocabulary_
        for token in content:
            s = stem(token)
            if (
                s in vocab
                or s in self.lex.single
                or any(c.isdigit() for c in token)
                or token in self.lex.people
                or any(c.startswith("syn") for c in self.lex.concepts(token))
            ):
                return None
        return " ".join(content)

    def _listed_quotes(self, text: str) -> list[str]:
        listed = re.search(r"⟦Q\d+⟧(?:\s*,\s*(?:and\s+)?⟦Q\d+⟧|\s+and\s+⟦Q\d+⟧)+", text)
        if not listed:
            return []
        return [self.masked.table[k].strip("'\"") for k in re.findall(r"⟦Q\d+⟧", listed.group(0))]

    @staticmethod
    def _repeated_object(plain: str) -> bool:
        """ "the churn report and the revenue report": one verb, two things of the same kind."""
        m = re.search(
            r"\b([a-z]+)\s+and\s+(?:the|a|an|their|our|its|his|her)\s+(?:[\w-]+\s+){0,3}?([a-z]+)\b",
            plain.lower(),
        )
        return m is not None and m.group(1) == m.group(2) and len(m.group(1)) > 2

    # -- failure clauses: retries and undo

    def _failure_clause(self, cond_text: str, rest: str, s_index: int, g_index: int) -> bool:
        found = ph.find_retry(rest, self.lex) or ph.find_retry(f"retry {rest}", self.lex)
        if found and re.search(r"\b(?:retry|retrying|try|tries|attempts?)\b", rest, re.IGNORECASE):
            target = self.resolve(cond_text)
            draft = self.drafts[target[-1]] if target else (self.drafts[-1] if self.drafts else None)
            if draft is not None:
                self._set_retry(draft, int(found.value))
            return True
        if self.lex.undo.search(self.masked.plain(rest)):
            previous = [d.index for d in self.drafts if d.sentence == s_index and d.segment == g_index - 1]
            failing = None if self.drafts else self._failing_step(cond_text, rest, s_index, g_index)
            if failing is not None:
                previous = [failing]
            elif not previous and self.drafts:
                last_sentence = self.drafts[-1].sentence
                previous = [d.index for d in self.drafts if d.sentence == last_sentence]
            self._undo.append((rest, previous, len(self.drafts)))
            return True
        return False

    def _failing_step(self, cond_text: str, rest: str, s_index: int, g_index: int) -> int | None:
        """ "If the payment fails, remove the charge" said before any step: the payment is a step of
        its own, the one the undo undoes (a charge whose compensation refunds it). Planned first, with
        a warning; None when the condition names no such action ("if it fails", "if anything breaks")."""
        failure = self.lex.failure.search(cond_text)
        if failure is None:
            return None
        subject = self.masked.plain(cond_text[: failure.start()]).strip(" ,")
        if self._PRONOUN.fullmatch(subject) or not [w for w in words(subject) if w not in _GENERIC]:
            return None
        # "if the shipment can't be booked": the verb after the failure word says what is done
        passive = re.match(r"\s*(?:be\s+)?([a-z]+(?:ed|en))\b", self.masked.plain(cond_text[failure.end() :]))
        said = f"{passive.group(1)} {subject}" if passive else subject
        undo_said = self.masked.plain(rest)
        undo_object = self.lex.undo.sub(" ", undo_said).strip()
        head = next(iter(self.matcher.light_object(f"do {subject}")[-1:]), None)
        undoable_names = [a.name for a in self.matcher.actions if undoable(a)]
        fitting = [
            (a, score)
            for a, score in self.matcher.rank(self._weighted(said), 8, among=undoable_names)
            if score >= MATCH_THRESHOLD and head is not None and self.matcher.names_doing(a, head)
        ]
        if not fitting:
            return None  # "if the order fails": no action here makes an order
        # nothing was planned before it, so not a step that needs another's record ("capture" needs
        # an authorization made first): one that stands on its own, when there is one
        made_elsewhere = {
            key for a in self.matcher.actions for key in a.output_properties if key.endswith("_id")
        }

        def needs_another(action: ActionSpec) -> bool:
            own = set(action.output_properties)
            return any(k in made_elsewhere and k not in own for k in action.required_inputs)

        fitting = [f for f in fitting if not needs_another(f[0])] or fitting
        spec, score = fitting[0]
        undoers = sorted({a.compensation for a, _ in fitting if a.compensation})
        named = self.matcher.rank(undo_said, 1, among=undoers) if undoers and undo_object else []
        if named and named[0][1] >= MATCH_THRESHOLD:
            # "the payment" may be a charge or a capture; "remove the charge" says which: the one
            # whose compensation that is, called what the condition and the undo call it
            pool = [a.name for a, _ in fitting if a.compensation == named[0][0].name]
            spec, score = self.matcher.rank(self._weighted(f"{said} {undo_object}"), 1, among=pool)[0]
        undo = self.catalog.get(spec.compensation or "")
        if undo is not None and not self.matcher.object_relates(undo, undo_said):
            return None  # "if the workspace can't be created, delete the billing customer": not its undo
        draft = Draft(
            len(self.drafts),
            spec,
            cond_text[: failure.start()].strip(" ,"),
            [],
            None,
            sentence=s_index,
            segment=g_index,
            unit=self._unit,
            score=score,
        )
        self.drafts.append(draft)
        self.frontier.append(draft.index)
        shown = self._show(draft.text)
        undone = f" with {spec.compensation} as its `compensate`" if spec.compensation else ""
        self.warnings.append(
            f'planned "{shown}" as a {spec.name} step{undone}: "if {self._show(cond_text)}" is about it '
            "and no earlier step does it (remove it if it happens elsewhere). A compensation runs when a "
            "later step fails the run; a step that itself fails is not compensated, as it did nothing to undo"
        )
        return draft.index

    _WEAK_FAILURE = re.compile(r"\b(?:can't|cannot|couldn't|won't)\b", re.IGNORECASE)

    def _unplanned_failure(self, cond_text: str, rest: str, *, step: bool = False) -> bool:
        """ "if the refund fails, notify support": the clause is about a step's outcome, which a
        workflow cannot branch on (a failed step fails the run; then only compensations run).
        Plan nothing for it and say so, rather than ask for a yes/no input "refund_fails"."""
        failure = self.lex.failure.search(cond_text)
        if failure is None:
            return False
        if self._WEAK_FAILURE.fullmatch(failure.group(0)) and not step:
            # "if the customer won't renew" is a business fact; "if the shipment can't be booked" is a step's
            subject = cond_text[: failure.start()]
            people = [w for w in words(subject) if w in self.lex.people]
            pronoun = re.match(
                r"^\s*(?:it|that|this|either|any|anything|something|one|they)\b", subject, re.IGNORECASE
            )
            if people or (not self.resolve(subject) and not pronoun):
                return False
        what, when = self._show(rest), self._show(cond_text)
        if ph.FAIL_RE.match(self.masked.plain(rest).lower()):
            self.warnings.append(
                f'"{what}" (if {when}) needs no step: a step that fails already fails the run'
            )
            return True
        self.warnings.append(
            f'not planned: "{what}" (if {when}). A workflow cannot run a step because another one '
            "failed: a failed step fails the run, and then only the `compensate` actions of the steps "
            'that completed run. To undo earlier work on failure, say "undo <step>"; to be told of a '
            "failure, watch the run's events (API/CLI/UI) or alert on failed runs outside the plan"
        )
        return True

    _HAVE_APPROVAL = re.compile(
        r"^(?:(?:we|you|they|i)(?:'ve)?\s+(?:have|get|got|receive|received|obtain|obtained)(?:\s+got)?"
        r"|there(?:'s|\s+is))\s+(?P<what>.+)$",
        re.IGNORECASE,
    )

    def _gate(self, phrase: str, unless: bool) -> Gate | None:
        """ "the manager approves" / "it's approved by finance" / (unless) "legal objects": a
        person's decision; None for anything else ("the credit check approves" is a step's result)."""
        plain = self.masked.plain(phrase).strip(" ,")
        if unless:
            m = ph.REJECTS_RE.match(plain)
            who = m.group("who") if m else None
            if m is None:
                return None
        else:
            m = ph.APPROVED_RE.match(plain) or ph.APPROVES_RE.match(plain)
            if m is None:
                # "once we have the manager's approval", "when there is sign-off from finance"
                had = self._HAVE_APPROVAL.match(plain)
                given = ph.GATE_PHRASE_RE.match(f" with {had.group('what')}") if had else None
                if given is None:
                    return None
                who = given.group("who2") or given.group("who")
                if who and (set(words(who)) & (ph.NOT_A_PERSON | _POSSESSIVES) or self._names_step(who)):
                    who = None
                return Gate(self._approver(who) if who else None, self._show(phrase))
            who = m.group("who")
        if who:
            who = re.sub(r"^(?:should|if|once|when)\s+", "", who, flags=re.IGNORECASE)
            if who.lower() in {"they", "he", "she"}:
                who = None  # "if they approve": whoever was asked
            elif set(words(who)) & ph.NOT_A_PERSON or self._names_step(who):
                return None
        return Gate(self._approver(who) if who else None, self._show(phrase))

    def _approval(
        self,
        gate: Gate,
        asked_for: str,
        deps: list[int],
        condition: Condition | None,
        s_index: int,
        g_index: int,
    ) -> int:
        """A `core.approval` draft after `deps`, asking about `asked_for`; it takes their place in
        the frontier."""
        shown = self._show(asked_for)
        approval = Draft(
            len(self.drafts),
            self.catalog["core.approval"],
            gate.phrase,
            list(deps),
            condition,
            sentence=s_index,
            segment=g_index,
            unit=self._unit,
            message=f"Approve: {shown[:1].upper() + shown[1:]}?",
        )
        approval.approvers = self._people(gate.who) if gate.who else None
        self.drafts.append(approval)
        self.frontier = [f for f in self.frontier if f not in deps]
        return approval.index

    def _segment_gate(self, seg: str) -> tuple[Gate | None, Condition | None, str]:
        """A gate said once at the end of a clause of joined items ("A and B if finance approves",
        "A and B if it's over $500 and finance approves"), with the data condition of the approval."""
        found = re.search(
            r"\s+(?:only\s+)?(?:if|unless|once|when|after|as\s+soon\s+as)\s+([^,]+)$", seg, re.IGNORECASE
        )
        gate: Gate | None = None
        condition: Condition | None = None
        unless_approved = False
        if found is not None:
            unless = found.group(0).strip().lower().startswith("unless")
            both = None if unless else self._gate_and_data(found.group(1))
            gate, condition = both if both else (self._gate(found.group(1), unless=unless), None)
            unless_approved = unless and gate is None and self._gate(found.group(1), False) is not None
        else:
            found = ph.GATE_PHRASE_RE.search(seg)
            if found is not None:
                who = found.group("who2") or found.group("who")
                gate = Gate(self._approver(who) if who else None, found.group(0).strip())
        if (gate is None and not unless_approved) or found is None or self._open_approval():
            return None, None, seg
        body = seg[: found.start()]
        items = mk.split_items(mk.TRAILING_PAR.sub("", body).strip(" ,"), self.lex, self.verbs)
        if len(items) < 2 or any(c not in {"start", "and", "comma"} for c, _ in items):
            return None, None, seg  # one item reads it itself; after a "then" it is that item's alone
        if any(mk.read_lead(t, self.lex, self.verbs)[0].kinds for _, t in items):
            return None, None, seg
        if unless_approved:
            if self._NEGATED.match(body) is None:
                # "refund it and email them unless the manager approves": only on a rejection
                self._unplanned_unless(found.group(1), body)
                return None, None, ""
            return None, None, seg  # "don't A or B unless ...": each item reads it
        return gate, condition, body

    def _succeeded(self, cond_text: str) -> str | None:
        """ "the refund goes through" / "it works": the step named (or the one before, for a
        pronoun) succeeded. Returns the words naming it; None when the clause is about anything else."""
        plain = self.masked.plain(cond_text)
        found = self.lex.success.search(plain)
        tail = plain[found.end() :].strip(" ,").lower() if found else ""
        if found is None or tail not in {"", "ok", "okay", "fine", "successfully"}:
            return None
        subject = plain[: found.start()].strip()
        if re.fullmatch(r"(?:it|that|this|they|both|all|everything|all of (?:it|them|that))", subject, re.I):
            return subject
        return subject if self._names_step(subject) else None

    def _open_approval(self) -> bool:
        """An approval was just asked for: "if they approve" / "once approved" mean that one."""
        return any(self.drafts[f].action.name == "core.approval" for f in self.frontier)

    _REJECTED = re.compile(
        r"^(?:(?:it|this|that|they|he|she|(?:the|their|our|his|her)\s+[\w\s'-]+?)"
        r"(?:'s|\s+(?:is|are|was|were|gets|get))?\s+)?"
        r"(?:not\s+approved|rejected|declined|denied|turned\s+down)(?:\s+by\s+.+)?$"
        r"|^(?:it|this|that|they|he|she|(?:the|their|our|his|her|a|an)\s+)?[\w\s'-]*?"
        r"(?:doesn't|don't|does\s+not|do\s+not|won't|didn't)\s+(?:approve|sign\s+off)\b.*$",
        re.IGNORECASE,
    )

    def _rejection(self, phrase: str) -> bool:
        """ "if they reject it", "if the refund is not approved": the other side of an approval."""
        plain = self.masked.plain(phrase).strip(" ,")
        if self._REJECTED.match(plain):
            return True
        m = ph.REJECTS_RE.match(plain)
        return m is not None and not self._names_step(m.group("who"))

    _NEGATED = re.compile(
        r"^(?:do\s+not|don't|never|not|no|we\s+(?:should|must)\s*(?:not|n't)|(?:you\s+)?can(?:not|'t))\s+",
        re.IGNORECASE,
    )

    def _unplanned_unless(self, cond_text: str, rest: str) -> None:
        rest = rest[:1].lower() + rest[1:]
        self._unplanned_rejection(f"unless {self._show(cond_text)}, i.e. only when they do not approve", rest)
        self.warnings[-1] += (
            '. To do it only with the approval, say "if {0}, {1}" or "don\'t {1} unless {0}"'.format(
                self._show(cond_text), self._show(rest)
            )
        )

    def _gate_and_data(self, cond_text: str) -> tuple[Gate, Condition] | None:
        """ "the order is over $5,000 and the manager approves": a person's decision and a condition
        on the data, in either order; None unless exactly one part is the decision."""
        parts = re.split(r"\s*,?\s+and\s+(?:if\s+)?", cond_text)
        if len(parts) < 2:
            return None
        gates = [(i, self._gate(p, False) or self._gate(f"it {p}", False)) for i, p in enumerate(parts)]
        found = [(i, g) for i, g in gates if g is not None]
        if len(found) != 1:
            return None
        data = " and ".join(p for i, p in enumerate(parts) if i != found[0][0])
        if len(words(self.masked.plain(data))) < 2:
            return None  # "if finance and legal approve": two people, not a condition
        return found[0][1], Condition(data)

    _SUBJECT = re.compile(
        r"^(?P<subj>.+?)\s+(?:needs?|requires?|must|has\s+to|have\s+to|should|(?:is|are)\s+subject\s+to)\b",
        re.IGNORECASE,
    )

    _PRONOUN = re.compile(
        r"(?:it|this|that|they|these|those|the\s+(?:step|action)|anything|everything|any\s+of\s+(?:it|them))\b",
        re.IGNORECASE,
    )

    def _approval_before(self, index: int, first: bool, s_index: int) -> None:
        """ "Refund the charge; if it's over $500, finance has to approve first", "refund it; refunds
        above $500 need finance's approval": a conditional approval about an earlier step goes before it."""
        draft = self.drafts[index]
        if draft.action.name != "core.approval" or draft.condition is None:
            return
        earlier = [d.index for d in self.drafts[:index] if not d.action.is_core]
        subject = self._SUBJECT.match(self.masked.plain(draft.text))
        said = subject.group("subj") if subject else ""
        target: int | None = None
        named = False
        if earlier and self._PRONOUN.match(said):
            target = earlier[-1]
        elif earlier:
            # "refunds over $500 need ...", "finance must approve any refund above $500" (a condition
            # said in the approval's own words, not an "if" before it about another step's result)
            own = draft.condition.text if draft.condition.text in draft.text else ""
            for words_said in (said, self.masked.plain(own)):
                scores = [(self._overlap(words_said, self.drafts[i]), i) for i in earlier if words_said]
                best = max(scores)[0] if scores else 0.0
                target = next((i for o, i in scores if o == best), None) if best >= 0.34 else None
                if target is not None:
                    named = True
                    break
        if target is None and first:
            same = [i for i in earlier if self.drafts[i].sentence == s_index]
            target = same[0] if same else None
        if target is not None:
            self._move_before([index], target)
            if draft.approvers is None:
                draft.approvers = self._approvers_said(draft.text)
            if not named:
                # "if it's over $500, finance has to approve first": say what is approved
                what = self._show(self.drafts[target].text)
                when = self._show(draft.condition.text)
                draft.message = f"Approve: {what[:1].upper() + what[1:]} ({when})?"
        elif said and not self._PRONOUN.match(said):
            self._policies[index] = said

    def _approvers_said(self, text: str) -> list[str] | None:
        """ "refunds above $500 need finance's approval" → ["finance"]; None when no one is named."""
        plain = self.masked.plain(text).strip(" ,")
        for pattern in ph.WHO_APPROVES:
            found = pattern.search(plain)
            if found is None:
                continue
            said = [w for w in found.group("who").split() if w.lower() not in _NOT_WHO]
            who = self._approver(" ".join(said)) if said else None
            if who and not set(words(who)) & (ph.NOT_A_PERSON | _POSSESSIVES) and not self._names_step(who):
                return self._people(who)
        return None

    def _people(self, who: str) -> list[str]:
        """ "finance and legal" → ["finance", "legal"]: each of them approves. A role or a team
        is a common noun, lower-case whatever the capitals ("Finance has to sign off" → "finance");
        a name stays as written ("Maria", "VP")."""
        named = [self._approver(w) for w in re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+", who) if w.strip()]
        common = self.lex.people | self.lex.teams
        named = [w.lower() if w and w.istitle() and w.lower() in common else w for w in named]
        return [w for w in named if w] or [who]

    def _guard_only(self, frame: _Frame) -> bool:
        """The branch so far is an approval asked only when the condition holds (and no "otherwise"
        follows, which would make what comes after it the branch)."""
        if self._has_else:
            return False
        branch = [d for d in self.drafts if d.condition is frame.condition]
        return bool(branch) and all(d.action.name == "core.approval" for d in branch)

    def _policy_steps(self) -> None:
        """ "Refunds above $500 need finance's approval" and no refund asked for elsewhere: the refund
        is the step the approval gates, so it is planned after it."""
        for index, said in self._policies.items():
            draft = self.drafts[index]
            if any(index in d.needs for d in self.drafts) or draft.condition is None:
                continue
            noun = next((w for w in words(self.masked.plain(said)) if w not in _GENERIC), "")
            verb = stem(noun)
            if verb not in self.verbs:
                continue
            created = self._item(verb, [index], None, draft.sentence, draft.segment, "")
            if created:
                self.warnings.append(
                    f'planned "{verb}" after the approval that "{self._show(draft.text)}" asks for; '
                    "name the step to approve if it is another one"
                )

    def _unplanned_rejection(self, when: str, rest: str) -> None:
        self.warnings.append(
            f'not planned: "{self._show(rest)}" ({when}). A rejection fails the `core.approval` step '
            "and with it the run, so no step can run on a rejection; the steps that need the approval "
            "simply do not run. Add a `compensate:` on earlier steps to undo them when that happens"
        )

    def _names_step(self, text: str) -> bool:
        return any(not self.drafts[i].action.is_core for i in self.resolve(text))

    @staticmethod
    def _approver(who: str) -> str | None:
        """ "the VP of Sales" → "VP of Sales", "a manager's" → "manager"."""
        cleaned = re.sub(r"(?:'s|s')$", "", who.strip())
        cleaned = re.sub(r"^(?:the|a|an|our|their|my|your|his|her)\s+", "", cleaned, flags=re.IGNORECASE)
        return cleaned.strip() or None

    def _first_word_verb(self, text: str) -> bool:
        tokens = words(self.masked.plain(text))
        return bool(tokens) and stem(tokens[0]) in self.verbs and not self.lex.approval.search(text)

    def _until(self, m: re.Match[str], for_wait: bool) -> tuple[str, str]:
        """ "on 2026-12-01" → ("2026-12-01T00:00:00Z", the words said); "" when the words do not give a
        full date, or name a deadline ("by ...") or an end ("suspend it until ...") rather than a start."""
        said = self.masked.unmask(m.group(0)).strip()
        prep = re.sub(r"\s+", " ", m.group("prep").lower())
        if prep in {"by", "before", "no later than"} or (prep in {"until", "till"} and not for_wait):
            return "", said
        iso = self.masked.unmask(m.group("iso") or "")
        full = re.fullmatch(
            r"(\d{4}-\d{2}-\d{2})[Tt ](\d{1,2}:\d{2}(?::\d{2})?)(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?", iso
        )
        if full:
            parts = [int(x) for x in full.group(2).split(":")] + [0]
            value = f"{full.group(1)}T{parts[0]:02d}:{parts[1]:02d}:{parts[2]:02d}{full.group(3) or 'Z'}"
            return (value if _iso_ok(value) else ""), said
        if iso:
            date = iso
        else:
            month = ph.MONTH_NUMBER[(m.group("month") or m.group("month2")).lower().rstrip(".")]
            day = int(m.group("day") or m.group("day2"))
            year = m.group("year") or m.group("year2")
            if not year:
                return "", said
            date = f"{int(year):04d}-{month:02d}-{day:02d}"
        clock = m.group("isotime") or (self.masked.unmask(m.group("time")) if m.group("time") else "")
        hour, minute = 0, 0
        found = re.match(r"(\d{1,2})(?::(\d{2}))?(?::\d{2})?\s*(am|pm)?", clock.strip(), re.IGNORECASE)
        if found:
            hour, minute = int(found.group(1)), int(found.group(2) or 0)
            if found.group(3):
                hour = hour % 12 + (12 if found.group(3).lower() == "pm" else 0)
        zone = m.group("zone") or "Z"
        value = f"{date}T{hour:02d}:{minute:02d}:00{zone}"
        return (value if _iso_ok(value) else ""), said

    def _note_utc(self, until: tuple[str, str]) -> None:
        if until[0].endswith("Z") and not until[1].upper().endswith("Z"):
            self.warnings.append(
                f'read "{until[1]}" as {until[0]} (UTC); change `until` for another time zone'
            )

    def _set_retry(self, draft: Draft, attempts: int) -> None:
        draft.attempts = attempts

    def _apply_undo(self) -> None:
        for rest, previous, count in self._undo:
            done = self.drafts[:count]
            candidates = [d for d in done if undoable(d.action)]
            parts = [
                p for p in re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+|\s+by\s+", self.masked.plain(rest)) if p
            ]

            def is_generic(part: str) -> bool:
                undo_only = self.lex.undo.sub("", part).strip()
                return not [
                    w
                    for w in words(undo_only)
                    if w not in _GENERIC
                    and w
                    not in {
                        "one",
                        "ones",
                        "that",
                        "succeeded",
                        "other",
                        "everything",
                        "what",
                        "was",
                        "made",
                        "created",
                        "steps",
                        "step",
                        "changes",
                        "all",
                        "by",
                    }
                ]

            specific = [p for p in parts if not is_generic(p)]
            # "roll back by cancelling X and deleting Y": the named undos are the whole of it
            parts = specific or parts[:1]
            for part in parts:
                part_words = [w for w in words(part) if w not in _GENERIC]
                named = self._undone_step(part, done)
                if named is not None:
                    # "undo the CRM update", "put the deal back": the object is the step done
                    if undoable(named.action):
                        named.compensate = True
                    else:
                        self.warnings.append(self._cannot_undo(part, [named]))
                    continue
                if is_generic(part):
                    pool = [self.drafts[i] for i in previous if undoable(self.drafts[i].action)] or candidates
                    if not pool:
                        self.warnings.append(self._cannot_undo(rest, [self.drafts[i] for i in previous]))
                    for d in pool:
                        d.compensate = True
                    continue
                names = sorted({d.action.compensation for d in candidates if d.action.compensation})
                if not names:
                    self.warnings.append(self._cannot_undo(part, [self.drafts[i] for i in previous]))
                    continue
                # every undo verb says "undo"; the object says which undo
                ranked = self.matcher.rank(part, 1, among=names)
                if not ranked or ranked[0][1] < 0.15 or not part_words:
                    self.warnings.append(
                        f'could not tell which step "{self._show(part)}" undoes, so no compensation was '
                        'added; name the step it undoes ("undo the <step>") or write `compensate:` '
                        "on that step"
                    )
                    continue
                undo = ranked[0][0].name
                holders = [d for d in candidates if d.action.compensation == undo]
                overlap = [self._overlap(part, d) for d in holders]
                best = max(overlap)
                chosen = [d for d, o in zip(holders, overlap, strict=True) if o == best]
                for d in chosen:
                    d.compensate = True

    def _undone_step(self, part: str, done: list[Draft]) -> Draft | None:
        """The step a generic undo names by what it did: "undo the CRM update" → the step that
        updated the CRM. None when the undo verb has its own meaning ("cancel the subscription")."""
        verb = self.lex.generic_undo.search(part)
        if verb is None or not done:
            return None
        # the words around and inside the undo phrase ("put the deal back") less the phrase's own
        inside = [w for w in words(verb.group(0)) if w not in self.lex.generic_undo_words]
        said = [*words(part[: verb.start()]), *inside, *words(part[verb.end() :])]
        # "the CRM update should be undone", "have the stage change reversed"
        obj = " ".join(w for w in said if w not in _MODAL_WORDS)
        if not self._concept_set(obj):
            return None
        scored = [(self._overlap(obj, d), d.index) for d in done if not d.action.is_core]
        if not scored:
            return None
        best = max(o for o, _ in scored)
        top = [i for o, i in scored if o == best]
        if best < 0.5 or len(top) != 1:
            return None
        return self.drafts[top[0]]

    def _cannot_undo(self, part: str, drafts: list[Draft]) -> str:
        named = [d for d in drafts if not d.action.is_core] or drafts
        if not named:
            return (
                f'nothing before "{self._show(part)}" can be undone, so no compensation was added; '
                "write `compensate:` on the step to undo"
            )
        which = ", ".join(sorted({d.action.name for d in named}))
        return (
            f'"{self._show(part)}": {which} has no `compensation` in the catalog and its output reports '
            "no `previous_<input>` values to write back, so no compensation was added; add "
            f"`compensation: <undo action>` to the catalog entry of {which}, or write `compensate:` on "
            "the step"
        )

    # -- references to earlier steps ("once the ticket exists")

    def _concept_set(self, text: str) -> set[str]:
        out: set[str] = set()
        for token in self.lex.concepts(text):
            if token in _GENERIC or stem(token) in _GENERIC:
                continue
            out.add(token[:5] if not token.startswith("syn") and len(token) > 5 else token)
        return out

    def _overlap(self, text: str, draft: Draft) -> float:
        mine = self._concept_set(text)
        if not mine:
            return 0.0
        theirs = self._concept_set(
            self.masked.plain(draft.text) + " " + " ".join(draft.action.name.split(".")[-1:])
        )
        return len(mine & theirs) / len(mine)

    def resolve(self, ref: str) -> list[int]:
        """The earlier drafts a phrase names ("the billing customer and the workspace"); [] when the
        phrase is generic ("it's done", "both are ready")."""
        parts = [p for p in re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+", self.masked.plain(ref)) if p.strip()]
        found: list[int] = []
        for part in parts:
            if not self._concept_set(part):
                continue
            scores = [(self._overlap(part, d), d.index) for d in self.drafts]
            if not scores:
                continue
            best = max(s for s, _ in scores)
            if best < 0.34:
                continue
            found += [i for s, i in scores if s == best and i not in found]
        return found

    def _show(self, text: str) -> str:
        shown = PLACEHOLDER_RE.sub(lambda m: self.masked.unmask(m.group(0)), text).strip()
        return shown if len(shown) <= 80 else shown[:77] + "..."

    def _drop_summary(self, all_sentences: list[str]) -> None:
        """A first sentence whose one step is done again later only announced the work."""
        first = [d for d in self.drafts if d.sentence == 0]
        if (
            len(all_sentences) < 2
            or len(first) != 1
            or first[0].action.is_core
            or re.search(r"\d|⟦", first[0].text)
        ):
            return
        later = [d for d in self.drafts if d.sentence > 0 and d.action.name == first[0].action.name]
        if not later:
            return
        gone = first[0].index
        self.warnings.append(f'read "{self._show(first[0].text)}" as a summary of the later steps')
        for d in self.drafts:
            if gone in d.needs:
                d.needs = [n for n in d.needs if n != gone] + [n for n in first[0].needs if n not in d.needs]
        self.drafts = [d for d in self.drafts if d.index != gone]
