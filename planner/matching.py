"""Which catalog action a piece of English asks for, from the catalog alone.

Each action becomes a short document: its name split into words (the verb and object count
twice), its description and its input and output field names, all passed through the lexicon's
concepts. A clause is compared with every action by two TF-IDF models (scikit-learn): one over
concept tokens, one over character n-grams of the raw words, which catches `booking`/`book` and
`freight`/`freights` that no synonym list covers. The index is built once per catalog and cached,
in the process and, for the fitted models, on disk (`planner.tfidf`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from planner.lexicon import Lexicon, lexicon, stem
from planner.tfidf import TfidfModel, fitted_models
from workflow.catalog import ActionSpec, Catalog

_WORD_WEIGHT = 0.7
_CHAR_WEIGHT = 0.3
_VERB_BONUS = 0.2
_NAMESPACE_BONUS = 0.35
_SYSTEM_BONUS = 0.2
_STOP = frozenset(
    "a an the of to for in on at by with from and or is are be it its their them they his her he she this"
    " that these those our we us you your my me i as into onto up out so".split()
)


def split_name(name: str) -> list[str]:
    """`provisioning.create_tenant` → [`provisioning`, `create`, `tenant`]."""
    return [w for w in re.split(r"[._\-\s]+|(?<=[a-z])(?=[A-Z])", name) if w]


def action_verbs(action: ActionSpec) -> str:
    """The verbs that say what the action does: the head of its name (`create` in
    `crm.create_account`) and the first word of its description, which by convention is the
    verb ("Books a shipment ...")."""
    local = split_name(action.name.rsplit(".", 1)[-1])
    out = [local[0] if local else ""]
    out.extend(action.description.split()[:1])
    return " ".join(out)


def action_doings(action: ActionSpec) -> str:
    """The words that say what an action does: its whole name and the verbs of its description
    (the first word and one after "and"/"or": "Creates a user ... and returns an invitation link")."""
    described = re.findall(r"[A-Za-z][A-Za-z'-]*", action.description)
    verbs = described[:1] + [
        w
        for before, w in itertools.pairwise(described)
        if before.lower() in {"and", "or", "then"} and w.lower().endswith("s")
    ]
    return " ".join([*split_name(action.name), *verbs])


def action_namespace(action: ActionSpec) -> str:
    return split_name(action.name)[0] if "." in action.name else ""


def _field_words(schema: dict[str, Any]) -> list[str]:
    props = schema.get("properties")
    if not isinstance(props, dict):
        return []
    # ids name other records (`tenant_id` of a user) and would pull matches toward them
    return [w for key in props if not str(key).endswith("_id") for w in split_name(str(key))]


def action_document(action: ActionSpec) -> str:
    """The text an action is matched on: name (twice), description, field names."""
    parts = split_name(action.name)
    namespace, local = parts[:1] if "." in action.name else [], split_name(action.name.rsplit(".", 1)[-1])
    text = [*namespace, *local, *local, action.description]
    text += _field_words(action.input)
    text += _field_words(action.output)
    return " ".join(text)


@dataclass
class _Index:
    actions: list[ActionSpec]
    words: TfidfModel
    """Over the concepts of each action's document."""
    chars: TfidfModel
    """Over the character n-grams of each action's document (`_char_text`)."""
    verbs: list[set[str]]
    namespaces: list[set[str]]
    doings: list[set[str]]
    """Concepts of what each action does (`action_doings`), for `verb_relates`."""
    fields: list[set[str]]
    """Stems of the words of each action's input and output field names."""
    documents: list[set[str]]
    """Concepts of each action's whole document (`action_document`), for what a light verb's
    object may name."""

    def position(self, action: ActionSpec) -> int | None:
        """Where `action` is in the index, by name: the index is shared by every catalog with the
        same names, descriptions and fields (`_fingerprint`), whose `ActionSpec`s differ in what the
        fingerprint leaves out (an invoke block's URL) and so are not equal to these."""
        for i, known in enumerate(self.actions):
            if known.name == action.name:
                return i
        return None


_CACHE: dict[tuple[Lexicon, tuple[Any, ...]], _Index] = {}


def _fingerprint(actions: Sequence[ActionSpec]) -> tuple[Any, ...]:
    return tuple(
        (a.name, a.description, tuple(a.input_properties), tuple(a.output_properties)) for a in actions
    )


class ActionMatcher:
    """Ranks catalog actions against English text. Build once per catalog; cheap to call."""

    def __init__(
        self,
        catalog: Catalog | Iterable[ActionSpec],
        *,
        lex: Lexicon | None = None,
        include_core: bool = False,
    ) -> None:
        self.lex = lex or lexicon()
        actions = list(catalog)
        if not include_core:
            actions = [a for a in actions if not a.is_core]
        self.actions = actions
        self._index = self._build(actions)
        self._creating = {c for c in self.lex.single.get("create", ()) if c.startswith("syn")}

    def _concepts(self, text: str) -> str:
        return " ".join(self.lex.concepts(text))

    def _verb_concepts(self, verbs: str) -> set[str]:
        out: set[str] = set()
        for word in verbs.split():
            s = stem(word)
            out |= {s, *self.lex.single.get(s, ())}
        return out

    def _build(self, actions: list[ActionSpec]) -> _Index:
        # per lexicon too: another lexicon reads the same actions into other concepts
        key = (self.lex, _fingerprint(actions))
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        docs = [action_document(a) for a in actions] or ["empty"]
        words, chars = fitted_models([self._concepts(d) for d in docs], [self._char_text(d) for d in docs])
        index = _Index(
            actions,
            words,
            chars,
            [self._verb_concepts(action_verbs(a)) for a in actions],
            [self._verb_concepts(action_namespace(a)) for a in actions],
            [self._verb_concepts(action_doings(a)) for a in actions],
            [{stem(w) for w in _field_words(a.input) + _field_words(a.output)} for a in actions],
            [set(self.lex.concepts(action_document(a))) for a in actions],
        )
        _CACHE[key] = index
        return index

    @staticmethod
    def _char_text(text: str) -> str:
        return " ".join(w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP)

    def scores(self, text: str, *, verb: str | None = None) -> list[float]:
        """Similarity of `text` to every action, in catalog order (0..1, roughly)."""
        index = self._index
        if not self.actions:
            return []
        if verb:
            # "text the customer": the person told is not what the action acts on
            text, verb = self.lex.without_recipient(text), self.lex.without_recipient(verb)
        sim_w = index.words.similarities(index.words.vector(self._concepts(text)))
        sim_c = index.chars.similarities(index.chars.vector(self._char_text(text)))
        out = [float(_WORD_WEIGHT * w + _CHAR_WEIGHT * c) for w, c in zip(sim_w, sim_c, strict=True)]
        if verb:
            concepts = self.lex.verb_concepts(verb)
            for i, (verbs, namespace) in enumerate(zip(index.verbs, index.namespaces, strict=True)):
                if concepts & verbs:
                    out[i] += _VERB_BONUS
                if concepts & namespace:
                    # "email him", "text them": the verb names the channel the action belongs to
                    out[i] += _NAMESPACE_BONUS
            for i in self._systems_named(verb):  # as said: `text` may repeat the object
                out[i] += _SYSTEM_BONUS
        return out

    _PLACE = re.compile(
        r"(?<![#\w-])(?:to|in|into|on|onto|from|via|through|inside|within)\s+"
        r"(?:(?:the|our|their|your|its|his|her|my)\s+)?([a-z][\w-]*)(?:\s+([a-z][\w-]*))?",
        re.IGNORECASE,
    )

    def _systems_named(self, text: str) -> set[int]:
        """The actions of the systems `text` names as where the step happens ("add the customer to
        the CRM", "post it in Slack", "register Acme in billing"). Where the work is done says
        whose action it is more surely than the other words do: "customer" is all over a billing
        action's description, yet a customer added to the CRM is the CRM's account. A system is
        an action's namespace, by its own word or, when no namespace is that word, by a synonym
        the catalog never uses itself ("Slack" / chat; "the invoice" is a thing the billing
        actions make, not billing); "to the CRM team" names people, not the CRM."""
        index = self._index
        people = self.lex.people | self.lex.teams
        named: set[int] = set()
        for found in self._PLACE.finditer(text):
            first, second = found.group(1).lower(), (found.group(2) or "").lower()
            if second in people or second.rstrip("s") in people:
                continue  # "tell the CRM team", "to the billing admins": people of the system
            for word in filter(None, (first, second)):
                s = stem(word)
                own = {i for i, ns in enumerate(index.namespaces) if s in ns and not s.startswith("syn")}
                alike = set(self.lex.single.get(s, ())) if s not in index.words.vocabulary else set()
                named |= own or {i for i, ns in enumerate(index.namespaces) if alike & ns}
        return named

    def verb_fits(self, action: ActionSpec, text: str) -> bool:
        """The verb opening `text` says what `action` does ("charged the card" / payments.charge_card),
        not only its object ("paid the invoice" is not billing.void_invoice)."""
        index = self._index
        i = index.position(action)
        if i is None:
            return False
        return bool(self.lex.verb_concepts(text) & index.verbs[i])

    def verb_is(self, action: ActionSpec, text: str) -> bool:
        """The verb opening `text` is the action's own ("provision" / "Provisions a new workspace",
        "note" / crm.add_note), not a synonym, or names the medium the action belongs to ("text
        them" / sms.send_message)."""
        index = self._index
        i = index.position(action)
        if i is None:
            return False
        first = [stem(w) for w in re.findall(r"[A-Za-z][A-Za-z'-]*", text)[:1]]
        own = {stem(w) for w in [*action_verbs(action).split(), *split_name(action.name.rsplit(".", 1)[-1])]}
        medium = self.lex.verb_sense(text) & index.namespaces[i]
        return bool(set(first) & own or medium)

    _OBJECT_END = re.compile(
        r"\s+(?:for|to|from|against|with|in|on|at|by|under|into|as|so|that|via|using|about|of|and|then|if"
        r"|once|when|after|before|until)\b|[,;:]",
        re.IGNORECASE,
    )
    _NOT_HEAD = frozenset(
        "a an the my our their his her its your some any this that these those them him her it us me"
        " off up out down back over care one ones".split()
    )

    def light_object(self, text: str, *, people: bool = False) -> list[str]:
        """The words of the object of the verb opening `text`, up to the first preposition, less
        determiners, pronouns and names ("get pizza for the team" → ["pizza"], "start playing the
        movie Inception" → ["playing", "movie"]); [] when the object is a pronoun or missing ("run it")."""
        tokens = re.findall(r"[A-Za-z][A-Za-z'-]*", text)
        if not tokens:
            return []
        rest = text.strip()[len(tokens[0]) :]
        phrase = self._OBJECT_END.split(rest, maxsplit=1)[0]
        said = [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z'-]*", phrase) if not w[0].isupper()]
        said = [w for w in said if w not in self._NOT_HEAD and w not in _STOP]
        if people:
            return said
        persons = self.lex.people | self.lex.teams
        things = [w for w in said if w not in persons and w.rstrip("s") not in persons]
        if said and not things:
            # "take the customer to dinner": the person is who it is done for; the rest says what
            after = self._OBJECT_END.split(rest, maxsplit=1)[1:]
            if after:
                return self.light_object(f"do {after[0]}")
        return things

    def object_relates(self, action: ActionSpec, text: str, *, whole: bool = True) -> bool:
        """What the verb opening `text` is done to is something `action` is about: a word of it, a
        phrase ("order form"), or the verb a noun is made from ("reservation"), is in the action's
        name, description or fields. `whole` reads every word after the verb ("add its link to the
        ticket as a comment"); otherwise only the object, less the person it is done for ("take the
        customer to dinner"). True when nothing is said but pronouns and names ("open it")."""
        i = self._index.position(action)
        if i is None:
            return False
        if whole:
            tokens = re.findall(r"(?<![\w'-])[A-Za-z][A-Za-z'-]*", text)[1:]
            # names are capitalised, but "the CRM" may be a word the catalog knows (kept if it is)
            said = [w.lower() for w in tokens if not w[0].isupper() or (len(w) > 1 and w.isupper())]
            # only words that mean something here: "the cheapest one", "December 10th" say nothing
            # of what is booked
            vocabulary = self._index.words.vocabulary
            said = [
                w
                for w in said
                if w not in self._NOT_HEAD
                and w not in _STOP
                and (stem(w) in self.lex.single or stem(w) in vocabulary)
            ]
        else:
            said = self.light_object(text)
        if not said:
            return True
        roots = {r for r in map(self.lex.verb_of_noun, said) if r}
        concepts = set(self.lex.concepts(" ".join(said))) | {
            c for r in roots for c in (r, *self.lex.single.get(r, ()))
        }
        index = self._index
        return bool(concepts & (index.documents[i] | index.doings[i] | index.fields[i]))

    def names_doing(self, action: ActionSpec, noun: str) -> bool:
        """`noun` names what `action` does ("the payment" / payments.charge_card, "the shipment" /
        shipping.create_shipment), not only something it touches."""
        i = self._index.position(action)
        if i is None:
            return False
        return bool({stem(noun), *self.lex.single.get(stem(noun), ())} & self._index.doings[i])

    def is_message(self, action: ActionSpec) -> bool:
        """The action tells someone something (`email.send_message`, `chat.post_message`): a word of
        its name is one of telling."""
        telling = {stem(v) for v in self.lex.message_verbs}
        return not action.is_core and any(stem(w) in telling for w in split_name(action.name))

    def verb_relates(self, action: ActionSpec, text: str) -> bool:
        """The verb opening `text` has something to do with `action`: the action's name or the verbs
        of its description say it or a synonym ("bill" / billing, "sign up" / Creates); a field or a
        longer word of its description is made of it ("close" / `close_reason`, "invite" / an
        invitation link); the action is a message and the verb one of telling ("ping #ops" / a chat
        post); it makes what the clause makes ("add a chat message"); or one of the two verbs says
        nothing of its own ("take care of the refund", "Do a specific operation on a stock").
        False when only the other words of `text` found the action: "order pizza for the team" is
        not a post to the team's chat, "call the customer" is not a billing customer made."""
        index = self._index
        i = index.position(action)
        if i is None:
            return False
        tokens = [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z'-]*", text)]
        if not tokens:
            return True
        if self.lex.umbrella.match(text.strip()):
            return True  # "take care of the refund": the object says what is done
        if tokens[0] in self.lex.light_verbs:
            # "make a transfer", "get the sales report": the object says what is done, so it must be
            # something the action is about ("get pizza for the team" is no shipping quote)
            # "run it": the object is an earlier step's; "take the customer to dinner": not a customer's
            return self.object_relates(action, text, whole=False)
        light = {stem(v) for v in self.lex.light_verbs}
        if any(s in light and s not in self.lex.single for s in map(stem, action_verbs(action).split())):
            return True  # "Do a specific operation on a stock": any verb may name what it does
        concepts = self.lex.verb_sense(text)
        if concepts & index.doings[i]:
            return True
        verb = stem(tokens[0])
        if verb in index.fields[i]:
            return True  # "close the deal" / a deal's `close_reason`
        made = {stem(w) for w in split_name(action.name.rsplit(".", 1)[-1])[1:]}
        making = concepts & self._creating or verb in {stem(v) for v in self.lex.making_verbs}
        if made & {stem(t) for t in tokens[1:]} and making:
            return True  # "add a chat message" / chat.post_message: making the very thing it makes
        described = (w.lower() for w in re.findall(r"[A-Za-z]+", action.description))
        if len(verb) >= 4 and any(w.startswith(verb) and len(w) >= len(verb) + 3 for w in described):
            return True  # "invite" / "an invitation link"
        telling = {stem(v) for v in self.lex.message_verbs}
        if not any(stem(w) in telling for w in split_name(action.name)):
            return False
        if verb in telling:
            return True
        # "post to #customer-success that ...", "share it in the team chat": putting words in a
        # channel is telling whoever reads it
        posting = set(self.lex.single.get("post", ())) & self.lex.verb_groups
        return bool(concepts & posting) and self._IN_CHAT.search(text) is not None

    _IN_CHAT = re.compile(
        r"#[\w-]|\b(?:channel|chat|slack|teams)\b|\b(?:to|with|for)\s+(?:the\s+|our\s+)?(?:[\w-]+\s+){0,3}team\b",
        re.IGNORECASE,
    )

    def rank(
        self, text: str, k: int = 5, *, verb: str | None = None, among: Iterable[str] | None = None
    ) -> list[tuple[ActionSpec, float]]:
        """The `k` best actions for `text`, best first, with their scores; `among` limits the names."""
        allowed = set(among) if among is not None else None
        pairs = [
            (a, s)
            for a, s in zip(self.actions, self.scores(text, verb=verb), strict=True)
            if allowed is None or a.name in allowed
        ]
        pairs.sort(key=lambda p: p[1], reverse=True)
        return pairs[:k]

    def shortlist(self, request: str, k: int = 30) -> list[ActionSpec]:
        """Actions worth showing a planner for this request: the best per sentence and clause, then
        the best for the whole request, then the compensations of those (so undo steps can be named)."""
        chosen: list[ActionSpec] = []
        pieces = [request, *re.split(r"[.;:!?]|,\s*(?:and\s+)?|\s+(?:and|then)\s+", request)]
        per_piece = max(2, k // max(1, len(pieces)))
        for piece in pieces:
            if len(piece.split()) < 2:
                continue
            for action, score in self.rank(piece, per_piece):
                if score > 0 and action not in chosen:
                    chosen.append(action)
        by_name = {a.name: a for a in self.actions}
        for action in list(chosen):
            undo = by_name.get(action.compensation or "")
            if undo is not None and undo not in chosen:
                chosen.append(undo)
        return chosen[:k]
