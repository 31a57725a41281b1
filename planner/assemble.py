"""Draft steps → a workflow document: ids, reduced `needs`, `with` from literals, upstream outputs
and declared run inputs, `if` expressions, retries, waits and compensations."""

from __future__ import annotations

import re
from typing import Any

import networkx as nx

from planner.lexicon import Lexicon, stem, words
from planner.literals import (
    MONEY_RE,
    ORG_KEYS,
    currency_code,
    entity_name,
    field_matches,
    fill_literals,
    in_units,
    money_input,
    money_value,
    names_entity,
    plain_string,
    typed,
)
from planner.reader import Condition, Draft, Reading, restorable
from planner.text import snake
from workflow.catalog import ActionSpec, Catalog
from workflow.document import Compensation, RetryPolicy, Step, Workflow

_CORE_IDS = {"core.wait": "wait", "core.approval": "approval", "core.log": "log", "core.fail": "fail"}
_NUMERIC = frozenset({"integer", "number"})
_COMPARE = (
    (r"\b(?:at least|or more|and up|and above)\b", ">="),
    (r"\b(?:at most|or less|or fewer|and under|and below)\b", "<="),
    (
        r"\b(?:over|above|more than|greater than|exceeds?|exceeding|higher than|bigger than|larger than)\b",
        ">",
    ),
    (r"\b(?:under|below|less than|fewer than|lower than|smaller than)\b", "<"),
    (r"\b(?:isn't|is not|not|doesn't|never)\b", "!="),
)


# a number said in a condition: "$5,000", "20%", "10 seats", "5k", "600"
_NUMBER_SAID = re.compile(
    r"(?<![\w.])[$€£]?\s?(?P<num>\d[\d,]*(?:\.\d+)?)(?:\s?(?P<k>[km])\b)?"
    r"(?:\s*(?P<unit>%|per\s?cent\b|pct\b|[a-z]+(?:\s+[a-z]+){0,2}\b))?",
    re.IGNORECASE,
)
_SCALE = {"k": 1000, "m": 1_000_000}
_NOT_UNIT = frozenset(
    (
        "and or then but if so to for in on at by of the a an is are was per each every from with than"
        " times x"
    ).split()
)
_CMP_WORDS = re.compile(
    r"\b(?:is|are|was|were|has|have|had|gets?|exceeds?|exceeding|comes?\s+to|totals|of|over|above|under"
    r"|below|more\s+than|less\s+than|fewer\s+than|greater\s+than|higher\s+than|lower\s+than|at\s+least"
    r"|at\s+most|bigger\s+than|larger\s+than|smaller\s+than)\b",
    re.IGNORECASE,
)
_SUBJECT_STOP = frozenset(
    "the a an it its it's this that their our his her my your they any each every of for on in with".split()
)


def _step_id(draft: Draft, used: set[str]) -> str:
    base = _CORE_IDS.get(draft.action.name) or draft.action.name.rsplit(".", 1)[-1]
    if draft.approvers and len(draft.approvers) == 1:
        base = f"{snake(draft.approvers[0], 3)}_approval"  # "manager_approval", "vp_sales_approval"
    base = re.sub(r"[^A-Za-z0-9_-]", "_", base)
    candidate, n = base, 2
    while candidate in used:
        candidate, n = f"{base}_{n}", n + 1
    used.add(candidate)
    return candidate


class Assembler:
    def __init__(self, catalog: Catalog, lex: Lexicon) -> None:
        self.catalog = catalog
        self.lex = lex
        self.inputs: dict[str, Any] = {}
        self.required_inputs: list[str] = []
        self._input_owner: dict[str, str] = {}
        self.warnings: list[str] = []
        self._entity: tuple[str, str] | None = None
        self._given: dict[str, tuple[dict[str, Any], Any]] = {}
        """A value the request gave a step, by input name, with that input's schema."""
        self._preset: dict[int, dict[str, str]] = {}
        """Inputs a condition reads, by draft: "if the order is over $5,000" → the charge's `amount`."""
        self._compared: dict[str, str | None] = {}
        """A condition's text → its expression on the inputs of the steps it is about."""
        """(input, value) of the name the request is about: "the account for Acme" → (name, Acme)."""

    def build(self, reading: Reading, request: str) -> Workflow:
        self._masked = reading.masked
        drafts = reading.drafts
        by_index = {d.index: d for d in drafts}
        used: set[str] = set()
        ids = {d.index: _step_id(d, used) for d in drafts}
        graph = nx.DiGraph()
        graph.add_nodes_from(ids)
        for d in drafts:
            for n in d.needs:
                if n in by_index and n != d.index:
                    graph.add_edge(n, d.index)
        if not nx.is_directed_acyclic_graph(graph):  # never expected; keep the plan runnable
            graph = nx.DiGraph(list(nx.dfs_edges(graph)))
            graph.add_nodes_from(ids)
        reduced = nx.transitive_reduction(graph)
        for d in drafts:
            if d.condition is not None and d.condition.text not in self._compared:
                # first, so that the steps the condition is about take the input it reads
                text = d.condition.text
                about = [by_index[n] for n in graph.successors(d.index)] if d.action.is_core else []
                about += [x for x in drafts if x.condition is not None and x.condition.text == text]
                self._compared[d.condition.text] = self._input_compare(
                    d.condition.text, [x for x in about if not x.action.is_core], ids
                )
        steps: list[Step] = []
        # a step said after the one it comes before ("refund it; refunds over $500 need approval")
        # is listed before it
        order = list(nx.lexicographical_topological_sort(graph))
        for d in sorted(drafts, key=lambda x: order.index(x.index)):
            ancestors = self._nearest_first(graph, d.index)
            with_ = self._with(d, [(ids[a], by_index[a].action) for a in ancestors], ids[d.index])
            step = Step(
                id=ids[d.index],
                action=d.action.name,
                description=reading.masked.unmask(d.text).strip() or None,
                needs=[ids[n] for n in sorted(reduced.predecessors(d.index))],
            )
            step.with_ = with_
            if d.condition is not None:
                step.if_ = self._condition(
                    d.condition, [(ids[a], by_index[a].action) for a in ancestors], reading
                )
            if d.for_each:
                name = self._list_name(d.for_each)
                self._declare(name, {"type": "array", "items": {"type": "string"}}, owner=d.action.name)
                step.for_each = f"${{{{ inputs.{name} }}}}"
                self._item_into(step, d.action)
            if d.attempts and d.attempts > 1:
                step.retry = RetryPolicy(max_attempts=min(d.attempts, 100))
            if d.timeout_s:
                step.timeout_s = d.timeout_s
            if d.compensate and d.action.compensation:
                step.compensate = self._compensation(step, d.action)
            elif d.compensate and restorable(d.action):
                step.compensate = self._restore(step, d.action)
            steps.append(step)
        name = snake(request, 6).replace("_", "-")[:60] or "plan"
        workflow = Workflow(
            name=name, description=request.strip(), steps=steps, metadata={"planner": "offline"}
        )
        reading.warnings.extend(self.warnings)
        if self.inputs:
            workflow.inputs = {"type": "object", "properties": self.inputs}
            if self.required_inputs:
                workflow.inputs["required"] = self.required_inputs
        return workflow

    @staticmethod
    def _nearest_first(graph: nx.DiGraph, node: int) -> list[int]:
        order: list[int] = []
        frontier = list(graph.predecessors(node))
        while frontier:
            nxt: list[int] = []
            for n in frontier:
                if n not in order:
                    order.append(n)
                    nxt.extend(graph.predecessors(n))
            frontier = nxt
        return order

    # -- inputs of a step

    def _with(self, draft: Draft, upstream: list[tuple[str, ActionSpec]], step_id: str) -> dict[str, Any]:
        action = draft.action
        if action.name == "core.wait":
            if draft.until:
                return {"until": draft.until}
            return (
                {"seconds": int(draft.wait_s)}
                if draft.wait_s
                else {
                    "until": self._input_ref(
                        "resume_at", {"type": "string", "format": "date-time"}, action.name
                    )
                }
            )
        if action.name == "core.approval":
            approval: dict[str, Any] = {"prompt": draft.message or "Approve this step?"}
            if draft.approvers:
                approval["approvers"] = list(draft.approvers)
            return approval
        if action.name in {"core.log", "core.fail"}:
            return {"message": draft.message or "done"}
        values = fill_literals(action, draft.text, self._masked, self.lex, draft.quoted)
        self._share_entity(draft, values)
        self._share_given(action, values)
        for key, schema in action.input_properties.items():
            if key in values or not isinstance(schema, dict):
                continue
            for source_id, source in upstream:
                out_schema = source.output_properties.get(key)
                if isinstance(out_schema, dict) and self._compatible(out_schema, schema):
                    values[key] = f"${{{{ steps.{source_id}.output.{key} }}}}"
                    break
        for key, ref in self._preset.get(draft.index, {}).items():
            values.setdefault(key, ref)
        for key in action.required_inputs:
            if key in values:
                continue
            schema = action.input_properties.get(key)
            schema = dict(schema) if isinstance(schema, dict) else {}
            values[key] = self._input_ref(key, schema, action.name, step_id)
        return values

    _PEOPLE = ("user", "contact", "person")

    def _share_given(self, action: ActionSpec, values: dict[str, Any]) -> None:
        """ "Update the CRM for Acme (ops@acme.example), then set up billing": billing needs the
        customer's admin email too, which the catalog describes as the CRM's: the address the
        request gave. Values said for one step fill a later step's required input of the same name
        and description (`_same_thing`); what each step was given is remembered for the next."""
        for key in action.required_inputs:
            schema = action.input_properties.get(key)
            if key in values or not isinstance(schema, dict):
                continue
            given = self._given.get(key)
            if given is not None and self._same_thing(given[0], schema):
                values[key] = given[1]
                continue
            # "Update the CRM for Acme (ops@acme.example), then send the onboarding email": the
            # customer's email address is the one given, whatever the email step calls its input
            alike = next(
                (v for k, (s, v) in self._given.items() if k != key and self._one_value(s, schema)), None
            )
            if alike is not None:
                values[key] = alike
        for key, value in values.items():
            schema = action.input_properties.get(key)
            literal = not (isinstance(value, str) and "${{" in value)
            if literal and isinstance(schema, dict) and key not in self._given:
                self._given[key] = (schema, value)

    def _share_entity(self, draft: Draft, values: dict[str, Any]) -> None:
        """ "Create the account for Acme, then set up billing": the billing customer is Acme too.
        The first name a step takes from the request is reused by later steps that need the same
        free-text input and do not name a person (a user's or contact's name is someone else's)."""
        action = draft.action
        if self._entity is None:
            named = entity_name(self._masked.unmask(draft.text), action, self.lex)
            key = next((k for k, v in values.items() if named is not None and v == named), None)
            if key is None:
                # 'the CRM for company "Acme"': a company's name the request gives, however said
                key = next(
                    (
                        k
                        for k, v in values.items()
                        if k in ORG_KEYS and isinstance(v, str) and "${{" not in v and v.strip()
                    ),
                    None,
                )
                named = values[key] if key is not None else None
            if key is not None and named is not None:
                self._entity = (key, named)
            return
        key, value = self._entity
        if key not in action.input_properties and names_entity(key):
            # the CRM's `company` is the provisioned account's `company_name`
            key = next((k for k in action.required_inputs if k in ORG_KEYS), key)
        schema = action.input_properties.get(key)
        if key in values or key not in action.required_inputs or not isinstance(schema, dict):
            return
        if not plain_string(schema) or typed(value, schema) != value:
            return
        resource = action.name.rsplit(".", 1)[-1].split("_")[-1]
        person = {c for p in self._PEOPLE for c in self.lex.single.get(stem(p), ())}
        if person & {stem(resource), *self.lex.single.get(stem(resource), ())}:
            return
        values[key] = value

    @staticmethod
    def _compatible(source: dict[str, Any], target: dict[str, Any]) -> bool:
        a, b = source.get("type"), target.get("type")
        return a is None or b is None or a == b or {a, b} <= {"integer", "number"}

    def _input_ref(self, key: str, schema: dict[str, Any], owner: str, step_id: str | None = None) -> str:
        if key not in self.inputs:
            # the email step's `to` is the customer's email the CRM step already asks for
            same = next(
                (
                    n
                    for n, d in self.inputs.items()
                    if self._input_owner.get(n) != owner and self._one_value(d, schema)
                ),
                None,
            )
            if same is not None:
                return f"${{{{ inputs.{same} }}}}"
        name = key
        if (
            name in self.inputs
            and self._input_owner.get(name) != owner
            and not key.endswith("_id")
            and not self._same_thing(self.inputs[name], schema)
        ):
            name = f"{step_id}_{key}" if step_id else f"{key}_2"
        self._declare(
            name,
            {
                k: v
                for k, v in schema.items()
                if k in {"type", "format", "description", "enum", "items", "minimum", "maximum"}
            },
            owner,
        )
        return f"${{{{ inputs.{name} }}}}"

    _PARTIES = frozenset(
        "customer client company account organization organisation org tenant buyer business".split()
    )

    def _same_thing(self, declared: dict[str, Any], schema: dict[str, Any]) -> bool:
        """Two actions' inputs of one name that the catalog describes alike, naming whose it is ("The
        customer's company name." for the CRM record and the provisioned account), ask for one value:
        one run input. A description of the format only ("ISO 3166-1 alpha-2 code.") says nothing of
        whose country it is: a person's and a company's stay apart."""
        said = str(schema.get("description") or "").strip()
        whose = {stem(w.split("'")[0]) for w in words(said)}
        parties = {stem(p) for p in self._PARTIES | self.lex.people}
        return bool(whose & parties) and all(
            declared.get(k) == schema.get(k) for k in ("description", "type", "format", "enum")
        )

    _POSSESSOR = re.compile(r"\b([a-z]+)'s\s+(.*)$")

    def _one_value(self, declared: dict[str, Any], schema: dict[str, Any]) -> bool:
        """Inputs of two names that ask for one value: of one format ("email"), each described as
        the same party's, one no more particular than the other ("The customer's email address" is
        the one "The customer's admin contact email" asks for). A billing email and an admin email
        of the same customer stay two inputs: each says which it is."""
        format_ = schema.get("format")
        if not format_ or any(declared.get(k) != schema.get(k) for k in ("type", "format", "enum")):
            return False
        said = []
        for described in (declared, schema):
            found = self._POSSESSOR.search(str(described.get("description") or "").lower())
            if found is None:
                return False
            said.append(found)
        owners = {stem(f.group(1)) for f in said}
        if len(owners) != 1 or not owners & {stem(p) for p in self._PARTIES | self.lex.people}:
            return False
        generic = {stem(w) for w in [*str(format_).split("-"), "address", "the", "a", "an", "of"]}
        first, second = ({stem(w) for w in words(f.group(2))} - generic for f in said)
        return first <= second or second <= first

    def _declare(self, name: str, schema: dict[str, Any], owner: str) -> None:
        if name not in self.inputs:
            self.inputs[name] = schema or {"type": "string"}
            self._input_owner[name] = owner
            self.required_inputs.append(name)

    @staticmethod
    def _list_name(phrase: str) -> str:
        listed = re.search(r"\b(?:on|in|from)\s+(?:the|our|their|a)\s+([\w\s-]+?)\s+list\b", phrase)
        if listed:
            return snake(listed.group(1), 3) + "_list"
        noun = snake(re.split(r"\b(?:on|in|from|that|which|who|we)\b", phrase)[0], 3)
        return noun if noun.endswith("s") else noun + "s"

    @staticmethod
    def _item_into(step: Step, action: ActionSpec) -> None:
        for key in action.required_inputs:
            value = step.with_.get(key)
            if isinstance(value, str) and value.startswith("${{ inputs.") and key not in {"tenant_id"}:
                step.with_[key] = "${{ item }}"
                return

    def _compensation(self, step: Step, action: ActionSpec) -> Compensation:
        undo = self.catalog.get(action.compensation or "")
        with_: dict[str, Any] = {}
        if undo is not None:
            for key in undo.required_inputs:
                if key in action.output_properties:
                    with_[key] = f"${{{{ steps.{step.id}.output.{key} }}}}"
                elif key in step.with_:
                    with_[key] = step.with_[key]
        return Compensation(action=action.compensation or "", **{"with": with_})

    def _restore(self, step: Step, action: ActionSpec) -> Compensation:
        """No catalog undo, but the action reports what it changed from (`previous_stage`): the
        same action, on the same record, writes the previous values back."""
        previous = restorable(action)
        with_: dict[str, Any] = {}
        for key in action.required_inputs:
            if key not in previous and key in step.with_:
                with_[key] = step.with_[key]  # what identifies the record: the step's own value
        for key, field in previous.items():
            with_[key] = f"${{{{ steps.{step.id}.output.{field} }}}}"
        unrestored = sorted(k for k in step.with_ if k not in with_)
        if unrestored:
            self.warnings.append(
                f"step {step.id}: its compensation writes back {', '.join(sorted(previous))} but cannot "
                f"restore {', '.join(unrestored)} ({action.name} does not report their previous values)"
            )
        return Compensation(action=action.name, **{"with": with_})

    # -- conditions

    def _condition(self, cond: Condition, upstream: list[tuple[str, ActionSpec]], reading: Reading) -> str:
        expression = self._compare(cond.text, upstream, reading) or self._compared.get(cond.text)
        if expression is None:
            expression = self._number_compare(cond.text) or self._mixed(cond.text)
        if expression is None:
            expression = self._flag(cond.text)
        return f"${{{{ not ({expression}) }}}}" if cond.negate else f"${{{{ {expression} }}}}"

    def _flag(self, text: str) -> str:
        """A yes/no run input for a condition on nothing the plan knows ("the customer is VIP")."""
        name = snake(self._masked.plain(text), 6)
        name = name if re.match(r"^[a-z_]", name) else f"when_{name}"
        self._declare(
            name, {"type": "boolean", "description": f"whether {self._masked.unmask(text)}"}, "condition"
        )
        return f"inputs.{name}"

    def _mixed(self, text: str) -> str | None:
        """ "the customer is on Enterprise and the discount is over 5%": the comparison on a number
        input, the rest a yes/no input, joined as said (not one yes/no input for the whole)."""
        parts = re.split(r"\s*,?\s+(and|or)\s+(?:if\s+)?", text)
        if len(parts) < 3:
            return None
        numeric = [
            bool(_NUMBER_SAID.search(self._masked.unmask(p)))
            and any(re.search(c, self._masked.plain(p).lower()) for c, _ in _COMPARE[:4])
            for p in parts[::2]
        ]
        if not any(numeric) or any(len(words(self._masked.plain(p))) < 2 for p in parts[::2]):
            return None
        joined = ""
        for i, part in enumerate(parts[::2]):
            expression = (self._number_compare(part) if numeric[i] else None) or self._flag(part)
            joined += f" {parts[2 * i - 1].lower()} {expression}" if i else expression
        return joined

    def _compare(self, text: str, upstream: list[tuple[str, ActionSpec]], reading: Reading) -> str | None:
        plain = reading.masked.plain(text).lower()
        tokens = words(plain)
        for source_id, action in upstream:
            for field, schema in action.output_properties.items():
                if not isinstance(schema, dict) or (
                    field not in tokens and field.replace("_", " ") not in plain
                ):
                    continue
                kind = schema.get("type")
                op = next((o for pattern, o in _COMPARE if re.search(pattern, plain)), "==")
                if kind in {"integer", "number"}:
                    number = re.search(r"(\d+(?:\.\d+)?)", reading.masked.unmask(text).replace(",", ""))
                    if not number:
                        continue
                    value: Any = typed(number.group(1), {"type": "number"})
                    op = op if op != "!=" else "<"
                    return f"steps.{source_id}.output.{field} {op} {value}"
                if kind == "boolean":
                    return f"{'not ' if op == '!=' else ''}steps.{source_id}.output.{field}"
                quoted = reading.masked.pieces(text, "Q")
                word = quoted[0].strip("'\"") if quoted else self._after_verb(plain, field)
                if word:
                    op = "!=" if op == "!=" else "=="
                    return f"steps.{source_id}.output.{field} {op} '{word}'"
        return None

    @staticmethod
    def _joined(parts: list[str], compare: Any) -> str | None:
        """Each comparison of a compound condition read by `compare`, joined as said."""
        found = [compare(part) for part in parts[::2]]
        if any(e is None for e in found):
            return None
        joined = str(found[0])
        for joiner, expression in zip(parts[1::2], found[1:], strict=True):
            joined += f" {joiner.lower()} {expression}"
        return joined

    def _input_compare(self, text: str, about: list[Draft], ids: dict[int, str]) -> str | None:
        if re.search(r"\s(?:and|or)\s", text):
            parts = self._compound(text)
            if parts is None:
                return None
            # "the order is over $5,000 and the discount above 5%": the amount the charge takes
            # and a number of its own for the discount
            return self._joined(
                parts, lambda part: self._one_input_compare(part, about, ids) or self._number_compare(part)
            )
        return self._one_input_compare(text, about, ids)

    def _one_input_compare(self, text: str, about: list[Draft], ids: dict[int, str]) -> str | None:
        """ "the order is over $5,000" / "it's above $500", said of a charge or a refund: a comparison
        on that step's own amount input (in minor units when the catalog says so), which the step
        then takes from the same run input; None when no step it is about has such an input."""
        raw = self._masked.unmask(text)
        plain = self._masked.plain(text).lower()
        op = next((o for pattern, o in _COMPARE[:4] if re.search(pattern, plain)), None)
        money = MONEY_RE.search(raw)
        number = None if money else re.search(r"(?<![\w.$€£])(\d+(?:\.\d+)?)(?![\w%])", raw.replace(",", ""))
        if op is None or (money is None and number is None):
            return None
        nouns = [w for w in words(plain) if w.isalpha() and len(w) > 2]
        for draft in about:
            props = draft.action.input_properties
            numeric = {k: s for k, s in props.items() if isinstance(s, dict) and s.get("type") in _NUMERIC}
            named = [k for k in numeric if any(field_matches(k, n, self.lex) for n in nouns)]
            if money is not None:
                named = [k for k in named if money_input(k, numeric[k])] or [
                    k for k in numeric if money_input(k, numeric[k])
                ]
            if len(named) != 1:
                continue
            key, schema = named[0], numeric[named[0]]
            if money is not None:
                value = in_units(money_value(money), schema)
            else:
                value = typed(number.group(1), schema) if number else 0
            given = fill_literals(draft.action, draft.text, self._masked, self.lex, draft.quoted).get(key)
            if given is not None:
                return f"{given} {op} {value}"  # the step's amount is written in the request
            ref = self._input_ref(key, dict(schema), draft.action.name, ids[draft.index])
            self._preset.setdefault(draft.index, {})[key] = ref
            return f"{ref[4:-3]} {op} {value}"
        return None

    def _compound(self, text: str) -> list[str] | None:
        """ "more than 10 seats and the discount is over 5%": the comparisons joined by and/or
        (text, joiner, text, ...), when every part compares a number; None otherwise."""
        parts = re.split(r"\s*,?\s+(and|or)\s+(?:if\s+)?", text)
        if len(parts) < 3:
            return None
        for part in parts[::2]:
            plain = self._masked.plain(part).lower()
            if not any(re.search(p, plain) for p, _ in _COMPARE[:4]):
                return None
            if not _NUMBER_SAID.search(self._masked.unmask(part)):
                return None
        return parts

    def _number_compare(self, text: str) -> str | None:
        """ "the discount is more than 20%", "the deal has more than 10 seats", "the order is over
        $5,000" with no step taking that number: a number run input compared in the `if`
        (`inputs.discount > 20`), never a yes/no input named after the sentence."""
        if re.search(r"\s(?:and|or)\s", text):
            parts = self._compound(text)
            return None if parts is None else self._joined(parts, lambda part: self._number_compare(part))
        raw = self._masked.unmask(text)
        plain = self._masked.plain(text).lower()
        op = next((o for pattern, o in _COMPARE[:4] if re.search(pattern, plain)), None)
        said = _NUMBER_SAID.search(raw)
        if op is None or said is None:
            return None
        money = MONEY_RE.search(said.group(0))
        if money is not None:
            value: float = money_value(money)
        else:
            value = float(said.group("num").replace(",", "")) * _SCALE.get((said.group("k") or "").lower(), 1)
        unit = (said.group("unit") or "").lower()
        if unit not in {"%", "percent", "per cent", "pct"}:
            # "10 seats and ...", "3 open tickets": the words up to the first that is not the unit's
            kept = []
            for w in unit.split():
                if w in _NOT_UNIT:
                    break
                kept.append(w)
            unit = "_".join(kept)
        subject = _CMP_WORDS.split(raw[: said.start()], maxsplit=1)[0]
        # "the discount on the Meridian deal": the discount
        subject = re.split(r"\s+(?:on|of|for|in|at|from|with|to|by)\s+", subject, maxsplit=1)[0]
        subject_words = [w for w in words(subject) if w not in _SUBJECT_STOP and not w.isdigit()]
        if subject_words and re.search(r"[^su]s$", subject_words[-1]) and len(subject_words[-1]) > 3:
            # "discounts over 20% need approval": the run has one discount
            subject_words[-1] = subject_words[-1][:-1]
        percent = unit in {"%", "percent", "per cent", "pct"}
        currency = money is not None or currency_code(unit.split("_")[0]) is not None
        count = bool(unit) and not percent and not currency
        # "more than 10 seats": the count is named by its unit; else by what the sentence is about
        noun = unit if count else "_".join(subject_words[-3:])
        before = raw[: said.start()].lower()
        by = re.search(r"\b(?:is|are|was|were|gets?|got)\s+([a-z]+)\s+by\s+(?:[a-z]+\s+){0,2}$", before)
        if count and by is not None and unit.rstrip("s") in self.lex.durations:
            noun = f"{unit}_{by.group(1)}"  # "overdue by more than 30 days": days_overdue
        if not noun:
            return None
        name = re.sub(r"[^a-z0-9_]", "_", noun.lower()).strip("_")
        if currency and not re.search(r"(?:amount|total|price|cost|value|fee|revenue|spend|budget)$", name):
            name = f"{name}_amount"
        name = name if re.match(r"^[a-z_]", name) else f"value_{name}"
        what = " ".join(subject_words) or name.replace("_", " ")
        schema: dict[str, Any]
        if percent:
            schema = {"type": "number", "description": f"the {what}, in percent (e.g. 25 for 25%)"}
        elif currency:
            symbol = unit.split("_")[0]
            if money is not None and money.group(0)[0] in "$€£":
                symbol = money.group(0)[0]
            schema = {"type": "number", "description": f"the {what}, in {symbol} (not cents)"}
        elif count and "." not in said.group("num"):
            counted = unit.replace("_", " ")
            schema = {"type": "integer", "minimum": 0, "description": f"the number of {counted}"}
        else:
            schema = {"type": "number", "description": f"the {what}"}
        if name in self.inputs and self.inputs[name].get("type") not in _NUMERIC:
            return None
        self._declare(name, schema, "condition")
        shown = int(value) if float(value).is_integer() else value
        return f"inputs.{name} {op} {shown}"

    @staticmethod
    def _after_verb(plain: str, field: str) -> str | None:
        m = re.search(
            rf"{field}\b.*?\b(?:is|as|comes back|equals|says|was)\s+(?:a\s+|an\s+)?(?:clean\s+)?([a-z_]+)",
            plain,
        )
        return m.group(1) if m else None

    _masked: Any = None
