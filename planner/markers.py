"""Discourse markers: the words that order clauses ("then", "at the same time", "once X is done",
"if X", "otherwise") and the splitting of a segment into items at them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from planner.lexicon import Lexicon, stem, words

PAR_WORDS = (
    r"at\s+the\s+same\s+time|simultaneously|in\s+parallel|concurrently|alongside(?:\s+(?:it|that|this|them))?"
    r"|at\s+once|together|side\s+by\s+side"
)
BLOCK_WORDS = (
    r"meanwhile|in\s+the\s+meantime|while\s+(?:that|this|it)(?:'s|\s+is)\s+(?:happening|running|going\s+on)"
)
SEQ_WORDS = (
    r"after\s+that|afterwards?|after\s+this|subsequently|past\s+that\s+point|from\s+there|next|then|finally"
    r"|lastly|last|first(?:\s+of\s+all)?|to\s+start|to\s+begin|once\s+(?:that's|that\s+is)\s+done"
    r"|when\s+(?:that's|that\s+is)\s+done|also|and|as\s+a\s+last\s+step|at\s+the\s+end"
)
JOIN_WORDS = (
    r"either\s+way|regardless|in\s+any\s+case|in\s+either\s+case|no\s+matter\s+what|whatever\s+happens"
    r"|in\s+all\s+cases"
)
# "right after the check, whatever the result, log it": a side step nothing later waits for
SIDE_WORDS = (
    r"whatever\s+the\s+(?:result|outcome)|regardless\s+of\s+the\s+(?:result|outcome)"
    r"|no\s+matter\s+the\s+(?:result|outcome)|pass\s+or\s+fail"
)
ELSE_WORDS = (
    r"otherwise|else|if\s+not|or\s+else|if\s+(?:he|she|it|they|that|this|so|the\s+\w+)\s+"
    r"(?:doesn't|don't|does\s+not|do\s+not|isn't|aren't|is\s+not|are\s+not|didn't|did\s+not)"
    r"(?:\s+\w+)?(?=\s*[,;:]|\s*$)"
)

_LEAD = [
    ("side", re.compile(rf"^(?:{SIDE_WORDS})\b\s*,?\s*", re.IGNORECASE)),
    ("join", re.compile(rf"^(?:{JOIN_WORDS})\b\s*,?\s*", re.IGNORECASE)),
    ("else", re.compile(rf"^(?:{ELSE_WORDS})\b\s*[,:]?\s*(?:then\s+)?", re.IGNORECASE)),
    (
        "par_ref",
        re.compile(
            r"^(?:at\s+the\s+same\s+time\s+as|in\s+parallel\s+with|alongside|concurrently\s+with"
            r"|while)\s+(?P<ref>[^,]+?)\s*,\s*",
            re.IGNORECASE,
        ),
    ),
    ("block", re.compile(rf"^(?:{BLOCK_WORDS})\b\s*[,:]?\s*", re.IGNORECASE)),
    ("par", re.compile(rf"^(?:(?:and|but)\s+)?(?:{PAR_WORDS})\b\s*[,:]?\s*", re.IGNORECASE)),
    ("par", re.compile(r"^both\s+(?=[a-z]+\s)(?!(?:are|is|have|were|of)\b)", re.IGNORECASE)),
    (
        "after",
        re.compile(
            r"^(?:once|when|after|as\s+soon\s+as|right\s+after|immediately\s+after|upon|the\s+moment"
            r"|following|only\s+after|until\s+after)\s+(?P<ref>[^,]+?)\s*,\s*(?:then\s+)?",
            re.IGNORECASE,
        ),
    ),
    (
        "if",
        re.compile(
            r"^(?:only\s+if|if|in\s+case|provided\s+(?:that\s+)?|assuming|whenever|only\s+when|only\s+for|should)\s+"
            r"(?P<ref>[^,]+?)\s*,\s*(?:then\s+)?",
            re.IGNORECASE,
        ),
    ),
    (
        "before",
        re.compile(
            r"^(?:before|prior\s+to|ahead\s+of|in\s+advance\s+of)\s+(?P<ref>[^,]+?)\s*,\s*", re.IGNORECASE
        ),
    ),
    ("unless", re.compile(r"^unless\s+(?P<ref>[^,]+?)\s*,\s*", re.IGNORECASE)),
    ("seq", re.compile(rf"^(?:{SEQ_WORDS})\b\s*,?\s*", re.IGNORECASE)),
]
# the same openings without a comma: "after it comes back create ..." ends where a verb starts
_LEAD_NO_COMMA = [
    ("after", re.compile(r"^(?:once|when|after|as\s+soon\s+as|right\s+after|upon)\s+", re.IGNORECASE)),
    ("if", re.compile(r"^(?:only\s+if|if|in\s+case)\s+", re.IGNORECASE)),
    ("par_ref", re.compile(r"^while\s+", re.IGNORECASE)),
]
TRAILING_PAR = re.compile(
    rf"[\s,]*(?:(?:do|run|doing)\s+)?(?:(?:all|both|each)\s+)?(?:(?:two|three|four|five|of\s+(?:them|those|these|the\s+\w+))\s+)?"
    rf"(?:{PAR_WORDS}|{BLOCK_WORDS})\s*$",
    re.IGNORECASE,
)
PURE_PAR = re.compile(
    rf"^(?:(?:do|run|doing|and)\s+)?(?:(?:all|both|each)\s+)?(?:(?:two|three|four|five)\s+)?(?:of\s+(?:them|those|these)\s+)?"
    rf"(?:{PAR_WORDS})$",
    re.IGNORECASE,
)
TRAILING_NOISE = re.compile(
    r"\s+(?:before\s+(?:any|anything|anyone|someone|we|you|i|he|she|it|they|money|the\s+money|going|moving|doing)\b[^,;]*"
    r"|first|at\s+the\s+end|right\s+away|immediately|straight\s+away|afterwards?|as\s+well|too|for\s+me)\s*$",
    re.IGNORECASE,
)
_BOUNDARY = re.compile(
    r"\s*,?\s+but\s+|\s*,?\s+as\s+well\s+as\s+(?=\S)|\s*,?\s+plus\s+(?=[a-z])"
    r"|\s*,\s*(?:and\s+|or\s+)?(?:then\s+)?|\s+and\s*,\s*|\s+and\s+then\s+|\s+and\s+(?=\S)|\s+then\s+|\s+followed\s+by\s+"
    r"|(?<!right)(?<!immediately)(?<!only)(?<!just)(?<!shortly)(?<!soon)(?<!straight)(?<!day)(?<!days)(?<!week)"
    r"(?<!weeks)(?<!hour)(?<!hours)(?<!month)(?<!months)(?<!minutes)(?<!year)(?<!years)"
    r"\s+(?=(?:once|when|after|as\s+soon\s+as)\s)",
    re.IGNORECASE,
)


_SUBORDINATE = re.compile(
    r"^\s*(?:(?:and|but|then)\s+)?(?:only\s+after|only\s+when|only\s+once|once|when|after|as\s+soon\s+as|if|only\s+if|unless|while|in\s+case|right\s+after"
    r"|immediately\s+after|before|prior\s+to|ahead\s+of|for\s+each|for\s+every|at\s+the\s+same\s+time\s+as|in\s+parallel\s+with|upon"
    r"|otherwise|whenever)\b",
    re.IGNORECASE,
)
_WAIT_LEAD_START = re.compile(
    r"^(?:\d+|[a-z]+)[\s-]+(?:days?|weeks?|hours?|minutes?|months?)\s+(?:later|after)\b", re.IGNORECASE
)
_WAIT_LEAD = re.compile(
    r"^\s*(?:(?:and|then)\s+)?(?:\d+|[a-z]+)[\s-]+(?:days?|weeks?|hours?|minutes?|months?)\s+(?:later|after)\b[^,]*$",
    re.IGNORECASE,
)


@dataclass
class Lead:
    """What the opening words of an item say about its place in the plan."""

    kinds: list[str] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)


def gate_like(text: str) -> bool:
    """ "finance signs off", "it's approved": a person's decision, not a step of its own."""
    from planner.phrases import APPROVED_RE, APPROVES_RE

    clause = text.split(",", 1)[0].strip()
    # "the manager approves it and text the customer": the decision ends where the next item starts
    for said in (clause, re.split(r"\s+and\s+", clause, maxsplit=1)[0]):
        if APPROVED_RE.match(said) or APPROVES_RE.match(said):
            return True
    return False


def starts_with_verb(text: str, verbs: frozenset[str], *, gerund: bool = True) -> bool:
    tokens = words(text)
    if not tokens or (not gerund and tokens[0].endswith("ing") and stem(tokens[0]) != tokens[0]):
        # a gerund ("booking"), not a verb that ends so ("ping", "bring")
        return False
    return stem(tokens[0]) in verbs


def said_of_subject(text: str, verbs: frozenset[str]) -> bool:
    """ "pays" in "once the customer pays": a verb with its subject's -s is what someone else does,
    never an instruction (which is said in the bare form: "pay")."""
    tokens = words(text)
    if not tokens:
        return False
    first = tokens[0]
    if not first.endswith("s") or first.endswith("ss") or first in verbs:
        return False
    return (
        stem(first[:-1]) in verbs
        or (first.endswith("es") and stem(first[:-2]) in verbs)
        or (first.endswith("ies") and stem(first[:-3] + "y") in verbs)  # "replies", "applies"
    )


def read_lead(text: str, lex: Lexicon, verbs: frozenset[str]) -> tuple[Lead, str]:
    """Strip the markers that open `text`; return what they said and the rest."""
    lead = Lead()
    rest = text.strip()
    for _ in range(8):
        matched = False
        filler = lex.fillers.match(rest)
        if filler and filler.end() > 0:
            rest = rest[filler.end() :].lstrip(" ,")
            matched = True
        for kind, pattern in _LEAD:
            m = pattern.match(rest)
            if not m:
                continue
            ref = m.groupdict().get("ref")
            if kind in {"after", "if", "unless", "par_ref"} and ref is not None:
                # a comma far away belongs to a later clause: "if it fails retry twice, then ..."
                if not _plausible_ref(ref, verbs) and _verb_split(rest[m.start("ref") :], verbs) is not None:
                    continue
            lead.kinds.append(kind)
            if ref is not None:
                lead.refs[kind] = ref.strip()
            rest = rest[m.end() :].lstrip(" ,")
            matched = True
            break
        if not matched:
            for kind, pattern in _LEAD_NO_COMMA:
                m = pattern.match(rest)
                if not m:
                    continue
                split = _verb_split(rest[m.end() :], verbs)
                if split is None:
                    continue
                ref, after = split
                lead.kinds.append(kind)
                lead.refs[kind] = ref
                rest = after
                matched = True
                break
        if not matched:
            break
    return lead, rest


def _plausible_ref(ref: str, verbs: frozenset[str]) -> bool:
    return len(ref.split()) <= 14


def _verb_split(text: str, verbs: frozenset[str]) -> tuple[str, str] | None:
    """Split "it comes back create their customer" before the first imperative verb after word 1."""
    tokens = list(re.finditer(r"[A-Za-z][A-Za-z'-]*", text))
    for i, tok in enumerate(tokens[1:], start=1):
        word = tok.group(0).lower()
        if word.endswith(("ing", "ed", "s")) and stem(word) != word.rstrip("s"):
            continue
        if stem(word) in verbs and tokens[i - 1].group(0).lower() not in {
            "to",
            "the",
            "a",
            "an",
            "be",
            "is",
            "was",
            "has",
            "have",
            "been",
            "will",
            "can",
        }:
            return text[: tok.start()].strip(" ,"), text[tok.start() :]
    return None


_PREP = r"(?:for|to|from|against|with|in|on|at|by|under|into|as|so|that|via|using|about|of)"


def _head(phrase: str) -> str:
    """Last word of the first noun phrase: "the monthly churn report for May" → "report"."""
    first = re.split(rf"\s+{_PREP}\s+|,", phrase.strip(), maxsplit=1)[0]
    tokens = re.findall(r"[A-Za-z][A-Za-z-]*", first)
    return tokens[-1].lower() if tokens else ""


def _same_head(before: str, following: str) -> bool:
    """ "Pull the churn report and the revenue report": two things of one kind, one verb."""
    if not re.match(r"(?:the|a|an|their|our|its|his|her|my)\s", following, re.IGNORECASE):
        return False
    words_before = re.findall(r"[A-Za-z][A-Za-z-]*", before)
    if len(words_before) < 2:
        return False
    verb_less = " ".join(words_before[1:])
    head_before = _head(verb_less)
    return bool(head_before) and len(head_before) > 2 and head_before == _head(following)


_GAPPED = re.compile(
    r"^(?:(?:the|our|their|his|her|my|your|a|an)\s+)?(?:[\w-]+\s+){0,2}?(?P<who>[\w-]+)"
    r"\s+(?:by|via|over|on|in|through|per)\s+\S",
    re.IGNORECASE,
)


def _gapped_message(before: str, following: str, lex: Lexicon) -> bool:
    """ "Notify the customer by email and the manager by text": the second message leaves out its
    verb; a person and a medium after "and" are an item of their own, told with the same verb."""
    first = words(before)[:1]
    found = _GAPPED.match(following)
    if not first or first[0] not in lex.message_verbs or found is None:
        return False
    who = found.group("who").lower()
    return who in lex.people or who.rstrip("s") in lex.people or who in lex.teams


def split_items(segment: str, lex: Lexicon, verbs: frozenset[str]) -> list[tuple[str, str]]:
    """Items of a segment with the connector before each: `start`, `and`, `then`, `followed`, `comma`."""
    items: list[tuple[str, str]] = []
    start, connector = 0, "start"
    for m in _BOUNDARY.finditer(segment):
        if m.start() <= start:
            continue
        following = segment[m.end() :]
        sep = m.group(0).lower()
        if "then" in sep:
            kind = "then"
        elif "followed" in sep:
            kind = "followed"
        elif "but" in sep or "well as" in sep or "plus" in sep:
            kind = "and"  # "email them as well as text the manager", "... plus text the manager"
        elif "and" in sep:
            kind = "and"
        elif "," in sep:
            kind = "comma"
        else:
            kind = "space"
        split = kind in {"then", "followed"}
        if not split:
            lead, rest = read_lead(following, lex, verbs)
            opened = [k for k in lead.kinds if k != "seq"]
            if kind == "space":
                # "post it after exporting the report" keeps its gerund: one item, read later
                gerund = re.match(r"(?:once|when|after|as\s+soon\s+as)\s+[a-z]+ing\b", following, re.I)
                split = (
                    "after" in opened
                    and starts_with_verb(rest, verbs)
                    and not said_of_subject(rest, verbs)
                    and gerund is None
                    and not gate_like(re.sub(r"^\S+(?:\s+soon\s+as)?\s+", "", following))
                )
            elif _WAIT_LEAD_START.match(following):
                split = True  # "close the ticket, and ten days after that send a survey"
            else:
                split = (
                    bool(opened)
                    or starts_with_verb(following, verbs, gerund=False)
                    or (starts_with_verb(rest, verbs, gerund=False))
                    or (
                        "," in sep
                        and bool(re.match(r"(?:i|we)(?:'d|\s+would)?\s+(?:want|need|like)\b", rest, re.I))
                    )
                )
        pending = segment[start : m.start()]
        if split and "," in sep:
            # "once it's booked, text them", "then, at the same time, ...": the comma ends an
            # opening (a subordinate clause or a marker), not an item
            if _WAIT_LEAD.match(pending) or read_lead(pending + ", x", lex, verbs)[1].strip() == "x":
                continue
        if not split and kind in {"and", "comma"} and _same_head(segment[start : m.start()], following):
            split = True
            kind = "and"
        if not split and kind == "and" and _gapped_message(segment[start : m.start()], following, lex):
            split = True
        if split:
            items.append((connector, segment[start : m.start()].strip(" ,")))
            start, connector = m.end(), kind
    items.append((connector, segment[start:].strip(" ,")))
    return [(c, t) for c, t in items if t]
