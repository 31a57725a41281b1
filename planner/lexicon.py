"""The English lexicon (`lexicon.yaml`) and the word normalisation built on it.

Matching works on *concepts*: every word is stemmed, and every word or phrase that belongs to a
synonym group also yields that group's token (`syn12`). Requests and catalog entries go through
the same normalisation, so "lock the workspace" and "Suspends a tenant" share tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from workflow.loader import load_yaml

_OBJECT_PRONOUNS = frozenset("them him her it this that these those everything us me".split())
_PARTICLES = frozenset("up off on back down out in over".split())
_DETERMINERS = frozenset("the a an our their your his her my its this that these those".split())
# a verb, then a short noun phrase ("the on-call manager", "our sales director", "them") that ends
# where a preposition, a determiner, a quote or the clause does: "email the customer the receipt"
_RECIPIENT = re.compile(
    r"^\s*(?P<verb>[a-z][a-z-]*)\s+(?P<np>(?:(?:the|our|their|your|his|her|my|a|an|every|each|all)\s+)?"
    r"(?:[a-z][a-z-]*\s+){0,2}?[a-z][a-z-]*)"
    r"(?=\s*$|\s*[,.;:]|\s+[$€£\d]|\s+(?:by|via|over|through|per|on|in|at|with|about|that|to|of|for|and|if|once|when|after"
    r"|know|the|a|an|their|our|your|his|her|its|⟦)\b)",
    re.IGNORECASE,
)
_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_IRREGULAR = {
    "went": "go",
    "sent": "send",
    "paid": "pay",
    "made": "make",
    "got": "get",
    "gave": "give",
    "taken": "take",
    "took": "take",
    "done": "do",
    "did": "do",
    "ran": "run",
    "set": "set",
    "put": "put",
    "shut": "shut",
    "cut": "cut",
    "built": "build",
    "bought": "buy",
    "sold": "sell",
    "held": "hold",
    "written": "write",
    "wrote": "write",
    "stood": "stand",
    "spun": "spin",
    "told": "tell",
    "led": "lead",
    "gone": "go",
    "drove": "drive",
    "driven": "drive",
    "flew": "fly",
    "flown": "fly",
    "won": "win",
    "data": "data",
    "status": "status",
    "address": "address",
    "business": "business",
    "access": "access",
    "analytics": "analytics",
    "this": "this",
    "its": "its",
    "his": "his",
    "process": "process",
    "news": "news",
    "series": "series",
    "sms": "sms",
    "kyc": "kyc",
    "plus": "plus",
    "bus": "bus",
}


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A small suffix stripper. It need not give real roots, only the same key for the forms of a
    word (`book`, `booked`, `booking`; `cancel`, `cancelling`), on both sides of a match."""
    w = word.lower()
    if w in _IRREGULAR:
        w = _IRREGULAR[w]
    if len(w) <= 3 or not w.isalpha():
        return w
    if w.endswith(("ies", "ied")) and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("ing") and len(w) >= 6:
        w = w[:-3]
    elif w.endswith("ed") and len(w) >= 5:
        w = w[:-2]
    elif w.endswith(("ches", "shes", "sses", "xes", "zes")):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] != "s":
        w = w[:-1]
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    return w


def words(text: str) -> list[str]:
    """Lower-cased word tokens (apostrophes kept inside words, `can't`)."""
    return _WORD_RE.findall(text.lower().replace("’", "'"))


@dataclass(frozen=True, eq=False)
class Lexicon:
    """The loaded lexicon, with its phrase and synonym indexes built once."""

    single: dict[str, tuple[str, ...]]
    """Stem of a one-word synonym → the concept tokens it carries."""
    multi: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]
    multi_first: tuple[str, ...]
    """The first word of each multi-word synonym, to skip its regex when that word is absent."""
    """Multi-word synonyms as patterns over lower-cased text → concept tokens."""
    phrases: tuple[tuple[re.Pattern[str], str], ...]
    verbs: frozenset[str]
    statement_words: frozenset[str]
    fillers: re.Pattern[str]
    umbrella: re.Pattern[str]
    undo: re.Pattern[str]
    generic_undo: re.Pattern[str]
    generic_undo_words: frozenset[str]
    """Undo words whose object is the step done, not the undo action ("roll back the CRM update")."""
    failure: re.Pattern[str]
    success: re.Pattern[str]
    approval: re.Pattern[str]
    numbers: dict[str, int]
    people: frozenset[str]
    light_verbs: frozenset[str]
    durations: dict[str, int]
    message_verbs: frozenset[str] = frozenset()
    party_verbs: frozenset[str] = frozenset()
    making_verbs: frozenset[str] = frozenset()
    generic_verbs: frozenset[str] = frozenset()
    """Verbs that say little of what is done without their object ("open", "create", "delete")."""
    """Verbs that make the thing they name ("log a note", "file a ticket")."""
    """Verbs of money whose object is the person who pays or is paid ("bill the customer")."""
    verb_groups: frozenset[str] = frozenset()
    teams: frozenset[str] = frozenset()
    """Teams and departments ("finance", "legal"): common nouns, not names."""
    """The concept tokens of the verb synonym groups (`synonyms`, not `noun_synonyms`)."""

    def concepts(self, text: str) -> list[str]:
        """Stemmed words plus the concept tokens of every synonym and phrase found in `text`."""
        return list(_concepts(self, text))

    def _concepts_uncached(self, text: str) -> tuple[str, ...]:
        low = text.lower().replace("’", "'")
        out: list[str] = []
        present = set(words(low))
        for (pattern, tokens), first in zip(self.multi, self.multi_first, strict=True):
            # a phrase can only match when its first word is there: skip most regexes cheaply
            if first not in present:
                continue
            if pattern.search(low):
                out.extend(tokens)
        for pattern, added in self.phrases:
            if pattern.search(low):
                # an idiom is deliberate evidence: it counts twice
                out.extend(stem(w) for w in added.split() * 2)
        for w in words(low):
            s = stem(w)
            out.append(s)
            out.extend(self.single.get(s, ()))
        return tuple(out)

    def verb_concepts(self, text: str) -> set[str]:
        """Concepts of the verb that opens `text`: its first word, plus a phrasal verb starting
        there ("cut off access", "set up", "give them back")."""
        low = text.lower().replace("’", "'").strip()
        tokens = words(low)
        if not tokens:
            return set()
        first = stem(tokens[0])
        out = {first, *self.single.get(first, ())}
        if tokens[0] in self.light_verbs:
            # "make a transfer": the object names the action
            nouns = [
                t
                for t in tokens[1:5]
                if t
                not in {
                    "a",
                    "an",
                    "the",
                    "my",
                    "our",
                    "their",
                    "his",
                    "her",
                    "its",
                    "some",
                    "this",
                    "that",
                    "with",
                    "by",
                    "off",
                    "up",
                }
            ]
            if nouns:
                noun = stem(nouns[0])
                # "make a transfer" is transferring; "run a check" still runs, so keep both
                own = set() if tokens[0] in {"make", "do", "take", "have", "give", "perform", "get"} else out
                out = {*own, noun, *self.single.get(noun, ())}
                root = self.verb_of_noun(nouns[0])
                if root:
                    out |= {root, *self.single.get(root, ())}  # "make a reservation" is reserving
        if len(tokens) > 2 and tokens[1] in _OBJECT_PRONOUNS and tokens[2] in _PARTICLES:
            tokens = [tokens[0], tokens[2], *tokens[3:]]  # "set them up" reads as "set up"
        head = " ".join(tokens[:6])
        phrasal: set[str] = set()
        for pattern, concept in self.multi:
            found = pattern.search(head)
            if found is not None and found.start() == 0:
                phrasal.update(concept)
        if phrasal and tokens[0] not in self.light_verbs:
            # "set up the subscription" makes it, "set aside stock" reserves it: a phrasal verb
            # means what it means whole, not what its first word does alone ("set" is updating)
            out -= set(self.single.get(first, ()))
        out |= phrasal
        for pattern, added in self.phrases:
            found = pattern.search(low)
            if found is not None and found.start() == 0:
                out.update(stem(w) for w in added.split())
        return out

    def verb_of_noun(self, noun: str) -> str | None:
        """The stem of the verb a noun is made from, when the lexicon knows that verb: "reservation"
        → `reserv`, "cancellation" → `cancel`, "payment" → `pay`, "renewal" → `renew`."""
        low = noun.lower()
        known = {stem(v) for v in self.verbs}
        for suffix in ("ation", "ition", "ment", "ion", "al"):
            if low.endswith(suffix) and len(low) - len(suffix) >= 3:
                root = stem(low[: -len(suffix)])
                if root in known or root in self.single:
                    return root
        return None

    def verb_sense(self, text: str) -> set[str]:
        """`verb_concepts` less the noun groups: the concepts of the opening word *as a verb*
        ("call" the customer is phoning, not "a call" on the calendar)."""
        return {c for c in self.verb_concepts(text) if not c.startswith("syn") or c in self.verb_groups}

    def without_recipient(self, text: str) -> str:
        """`text` less the person a message verb addresses: "notify the customer by email" →
        "notify by email", "send the sales director an SMS" → "send an SMS". The recipient is who
        hears of the step, not what it acts on, so "customer" must not pull toward customer records.
        Unchanged unless the verb is a message verb and a person-headed phrase follows it."""
        found = _RECIPIENT.match(text)
        if found is None or found.group("verb").lower() not in self.message_verbs | self.party_verbs:
            return text
        tokens = words(found.group("np"))
        if not tokens or (tokens[-1].rstrip("s") not in self.people and tokens[-1] not in self.people):
            return text
        if any(t in _DETERMINERS for t in tokens[1:]):
            return text
        if set(self.single.get(stem(tokens[-1]), ())) & set(self.single.get("chat", ())):
            return text  # "tell the team": a team is told in its chat, the words name the medium
        rest = text[found.end() :].strip()
        if found.group("verb").lower() not in self.message_verbs:
            # "bill the client for the fee" → "bill them for the fee": the verb still has its object
            return f"{found.group('verb')} them {rest}".strip()
        return f"{found.group('verb')} {rest}".strip()

    def number(self, token: str) -> int | None:
        token = token.lower().replace(",", "")
        if token.isdigit():
            return int(token)
        return self.numbers.get(token)


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    parts = [re.escape(p) if p != ".*" else r"(?:\S+ ){0,4}?\S+" for p in phrase.split()]
    body = r"\s+".join(parts).replace(r"\S+\s+", r"\S+ ")
    return re.compile(rf"(?<![\w-]){body}(?![\w-])")


def _alternation(items: list[str]) -> re.Pattern[str]:
    parts = []
    for item in sorted(items, key=len, reverse=True):
        pieces = [r"(?:\S+\s+){0,4}?" if p == ".*" else re.escape(p) for p in item.split()]
        text = ""
        for piece in pieces:
            if not text:
                text = piece
            elif piece.startswith("(?:\\S+"):
                text += r"\s+" + piece
            elif text.endswith("?"):
                text += piece
            else:
                text += r"\s+" + piece
        parts.append(text)
    return re.compile(r"(?<![\w'-])(?:" + "|".join(parts) + r")(?![\w-])", re.IGNORECASE)


def build_lexicon(data: dict[str, Any]) -> Lexicon:
    single: dict[str, list[str]] = {}
    multi: dict[str, list[str]] = {}
    verb_groups = len(data.get("synonyms", []))
    for index, group in enumerate([*data.get("synonyms", []), *data.get("noun_synonyms", [])]):
        token = f"syn{index}"
        for entry in group:
            entry = str(entry).lower()
            if " " in entry or "-" in entry:
                multi.setdefault(entry, []).append(token)
            else:
                single.setdefault(stem(entry), []).append(token)
                single.setdefault(entry, []).append(token)
    fillers = "|".join(f"(?:{f})" for f in data.get("fillers", []))
    return Lexicon(
        single={k: tuple(dict.fromkeys(v)) for k, v in single.items()},
        multi=tuple((_phrase_pattern(k), tuple(v)) for k, v in multi.items()),
        multi_first=tuple(words(k)[0] if words(k) else "" for k in multi),
        phrases=tuple((re.compile(p["pattern"]), str(p["add"])) for p in data.get("phrases", [])),
        verbs=frozenset(str(v) for v in data.get("verbs", [])),
        statement_words=frozenset(str(v) for v in data.get("statement_words", [])),
        fillers=re.compile(rf"^\s*(?:(?:{fillers})\b[\s,]*)+", re.IGNORECASE),
        umbrella=_alternation([str(v) for v in data.get("umbrella_verbs", [])]),
        undo=_alternation([str(v) for v in data.get("undo_words", [])]),
        generic_undo=_alternation([str(v) for v in data.get("generic_undo_words", [])]),
        generic_undo_words=frozenset(w for v in data.get("generic_undo_words", []) for w in words(str(v))),
        failure=_alternation([str(v) for v in data.get("failure_words", [])]),
        success=_alternation([str(v) for v in data.get("success_words", [])]),
        approval=_alternation([str(v) for v in data.get("approval_words", [])]),
        numbers={str(k): int(v) for k, v in data.get("numbers", {}).items()},
        people=frozenset(str(v) for v in data.get("people", [])),
        light_verbs=frozenset(str(v) for v in data.get("light_verbs", [])),
        durations={str(k): int(v) for k, v in data.get("durations", {}).items()},
        message_verbs=frozenset(str(v) for v in data.get("message_verbs", [])),
        party_verbs=frozenset(str(v) for v in data.get("party_verbs", [])),
        making_verbs=frozenset(str(v) for v in data.get("making_verbs", [])),
        generic_verbs=frozenset(str(v) for v in data.get("generic_verbs", [])),
        verb_groups=frozenset(f"syn{i}" for i in range(verb_groups)),
        teams=frozenset(str(v) for v in data.get("teams", [])),
    )


@lru_cache(maxsize=8192)
def _concepts(lex: Lexicon, text: str) -> tuple[str, ...]:
    return lex._concepts_uncached(text)


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    """The packaged lexicon, parsed once per process (by libyaml, as catalogs are: ~6 ms, not ~50)."""
    text = resources.files("planner").joinpath("lexicon.yaml").read_text(encoding="utf-8")
    return build_lexicon(load_yaml(text))
