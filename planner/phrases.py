"""Recognisers for the small fixed phrases of workflow English: retries, timeouts, durations,
waits, approvals, logs, run failures, loops and the markers that order clauses."""

from __future__ import annotations

import re
from dataclasses import dataclass

from planner.lexicon import Lexicon

_NUM = r"(?:\d+|[a-z]+)"
_UNIT = (
    r"(?:seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|nights?|weeks?|wks?|fortnights?|months?"
    r"|quarters?|years?)"
)
DURATION_RE = re.compile(rf"\b(?:(\d+(?:\.\d+)?|[a-z]+)[\s-]+)?({_UNIT})\b", re.IGNORECASE)

# "retry up to 3 times" = 4 attempts; "try up to 5 times" / "5 attempts" = 5
_RETRY_PATTERNS: tuple[tuple[re.Pattern[str], int], ...] = (
    (
        re.compile(
            rf"\bretr(?:y|ying|ies|ied)\b(?:\s+(?:it|this|that|them|the\s+\w+))?\s+"
            rf"(?:up\s+to\s+|at\s+most\s+|a\s+maximum\s+of\s+|another\s+)?({_NUM})\s*(?:more\s+|additional\s+|extra\s+)?"
            rf"(?:times?|retries|attempts)?(?:\s+more)?",
            re.IGNORECASE,
        ),
        1,
    ),
    (
        re.compile(
            rf"\b(?:up\s+to|at\s+most|a\s+maximum\s+of|max(?:imum)?(?:\s+of)?)\s+({_NUM})\s+(?:tries|attempts)\b",
            re.IGNORECASE,
        ),
        0,
    ),
    (
        re.compile(
            rf"\btry(?:\s+it|\s+this|\s+that)?\s+(?:up\s+to\s+|at\s+most\s+)?({_NUM})\s+times\b",
            re.IGNORECASE,
        ),
        0,
    ),
    (re.compile(rf"\b({_NUM})\s+(?:more\s+)?retries\b", re.IGNORECASE), 1),
    (re.compile(rf"\b({_NUM})\s+(?:tries|attempts)\b", re.IGNORECASE), 0),
)
_RETRY_TAIL = re.compile(
    r"^(?:\s*(?:with\s+(?:exponential\s+)?back-?off|(?:if|when|on|in\s+case\s+of|whenever)\s+[^,;]*?"
    r"(?:fails?|errors?(?:\s+out)?|fail(?:ure|s)?|times?\s+out|errors|problems?|issues?)\b))+",
    re.IGNORECASE,
)
_TIMEOUT_RE = re.compile(
    rf"\b(?:time\s*-?out|timeout)\s+(?:after|of|at)?\s*((?:\d+(?:\.\d+)?|[a-z]+)[\s-]*{_UNIT})|"
    rf"\b((?:\d+(?:\.\d+)?|[a-z]+)[\s-]*{_UNIT})\s+time\s*-?out\b|"
    rf"\bgive\s+up\s+after\s+((?:\d+(?:\.\d+)?|[a-z]+)[\s-]*{_UNIT})|"
    rf"\b(?:within|in\s+under|no\s+longer\s+than|at\s+most)\s+((?:\d+(?:\.\d+)?|[a-z]+)[\s-]*{_UNIT})",
    re.IGNORECASE,
)


@dataclass
class Found:
    value: float
    span: tuple[int, int]


def duration_seconds(text: str, lex: Lexicon) -> Found | None:
    """The first duration in `text`: "48 hours", "a week", "three days", "30-minute"."""
    for match in DURATION_RE.finditer(text):
        count_text, unit = match.group(1), match.group(2).lower().rstrip("s")
        unit = {"sec": "second", "min": "minute", "hr": "hour", "wk": "week"}.get(unit, unit)
        if unit not in lex.durations:
            continue
        if count_text is None:
            count: float | None = 1.0
        else:
            try:
                count = float(count_text)
            except ValueError:
                number = lex.number(count_text)
                count = float(number) if number is not None else None
        if count is None:
            if count_text and count_text.lower() in {
                "the",
                "those",
                "these",
                "that",
                "this",
                "per",
                "each",
                "every",
            }:
                continue
            count = 1.0
        return Found(count * lex.durations[unit], match.span())
    return None


def find_retry(text: str, lex: Lexicon) -> Found | None:
    """Total attempts a retry phrase asks for, and where the phrase (with its "if it fails") is."""
    for pattern, extra in _RETRY_PATTERNS:
        match = pattern.search(text)
        if not match:
            continue
        number = lex.number(match.group(1))
        if number is None or number < 1 or number > 50:
            continue
        end = match.end()
        tail = _RETRY_TAIL.match(text[end:])
        if tail:
            end += tail.end()
        return Found(float(number + extra), (match.start(), end))
    return None


def find_timeout(text: str, lex: Lexicon) -> Found | None:
    match = _TIMEOUT_RE.search(text)
    if not match:
        return None
    phrase = next(g for g in match.groups() if g)
    found = duration_seconds(phrase, lex)
    return Found(found.value, match.span()) if found else None


WAIT_RE = re.compile(
    r"^(?:wait|hold\s+off|pause|sleep|delay|hang\s+on|give\s+(?:them|him|her|it|the\s+\w+|us)(?:\s+a\s+(?:grace\s+period\s+of|further))?)"
    r"\b(?:\s+(?:for|until|another|those|these|the|a|an|about|roughly|around))*\s*",
    re.IGNORECASE,
)
NEXT_TIME_RE = re.compile(
    r"\b(?:the\s+next\s+(?:morning|day|business\s+day|working\s+day)|tomorrow(?:\s+morning)?|overnight)\b",
    re.IGNORECASE,
)
WAIT_PREFIX_RE = re.compile(
    rf"^(?P<dur>(?:\d+|[a-z]+)[\s-]+{_UNIT})\s+(?:later|on|after(?P<ref>\s+[^,]*?)?)(?:\s*,\s*|\s+(?=\S))",
    re.IGNORECASE,
)
LOG_RE = re.compile(
    r"\b(?:run(?:'s)?\s+log|run\s+history|workflow\s+log|the\s+log|audit\s+(?:log|trail)|in\s+the\s+history)\b"
    r"|^(?:log|record)\s+(?:that|the\s+fact)\b",
    re.IGNORECASE,
)
FAIL_RE = re.compile(
    r"^(?:fail|abort|stop|halt|end|terminate|kill|cancel)\s+(?:the\s+|this\s+)?(?:run|workflow|process|flow)\b"
    r"|^(?:fail|abort)\b",
    re.IGNORECASE,
)
FOR_EACH_RE = re.compile(
    r"(?:\b(?:for|to)\s+)?\b(?:each|every)\s+((?:one\s+of\s+(?:the|our|their)\s+)?[\w-]+"
    r"(?:\s+(?:on|in|from)\s+(?:the|our|their|a|this)\s+[\w-]+(?:\s+[\w-]+)?\s+list)?)",
    re.IGNORECASE,
)
MESSAGE_RE = re.compile(r"\b(?:with\s+the\s+(?:message|reason|note)|saying|that)\s+(.+)$", re.IGNORECASE)

# -- approvals that gate a step ("if the manager approves", "once finance signs off")

_WHO = r"(?P<who>[\w'&-]+(?:\s+[\w'&-]+){0,4}?)"
_GIVE = r"(?:go-ahead|go\s+ahead|green\s+light|ok|okay|approval|sign-off|signoff|blessing)"
APPROVES_RE = re.compile(
    rf"^{_WHO}\s+(?:has\s+|have\s+|does\s+|do\s+)?(?:approves?|approved|okays?|okayed|oks|signs?\s+off|signed\s+off"
    rf"|gives?\s+(?:\w+\s+)?{_GIVE}|gave\s+(?:\w+\s+)?{_GIVE})"
    r"(?:\s+(?:on\s+|of\s+)?(?:it|this|that|them|(?:the|their|our|his|her)\s+[\w\s'-]+))?$",
    re.IGNORECASE,
)
APPROVED_RE = re.compile(
    r"^(?:(?:it|this|that|they|(?:the|their|our|his|her)\s+[\w\s'-]+?)(?:'s|\s+(?:is|are|was|were|gets|get|has\s+been"
    r"|have\s+been))?\s+)?(?:approved|signed\s+off|okayed|green-?lit)(?:\s+by\s+(?P<who>.+))?$",
    re.IGNORECASE,
)
REJECTS_RE = re.compile(
    rf"^{_WHO}\s+(?:rejects?|rejected|declines?|vetoes|vetos|veto|objects?|says\s+no|turns?\s+(?:it|this|that)\s+down)"
    r"(?:\s+(?:it|this|that|them|(?:the|their|our|his|her)\s+[\w\s'-]+))?$",
    re.IGNORECASE,
)
# "refund it with the manager's approval", "subject to approval from finance"
GATE_PHRASE_RE = re.compile(
    r"\s+(?:with|after|subject\s+to|pending|upon|following|once\s+(?:we\s+have|there\s+is))\s+"
    r"(?:(?:the|a|an)\s+)?(?:(?P<who>[\w'&-]+(?:\s+[\w'&-]+){0,3}?)(?:'s)?\s+)??"
    r"(?:approval|sign-off|signoff|go-ahead|ok|okay|green\s+light|blessing)"
    r"(?:\s+(?:from|by|of)\s+(?P<who2>[\w'&-]+(?:\s+[\w'&-]+){0,4}))?\s*$",
    re.IGNORECASE,
)
# who an approval said in one clause is asked of: "sign-off from finance", "the CFO's approval",
# "needs the CFO to sign off", "finance has to approve"
_NAME = r"(?P<who>[\w&-]+(?:\s+(?:of\s+)?[\w&-]+){0,2}?)"
_ASKED = r"(?:approval|sign-?off|signoff|go-ahead|ok|okay|blessing)"
WHO_APPROVES = (
    re.compile(rf"\b{_ASKED}\s+(?:from|by)\s+(?:the\s+|a\s+|an\s+|our\s+)?{_NAME}(?=\s+(?:for|on|when|if|before|first"
               r"|is|are)\b|\s*[,;]|\s*$)", re.IGNORECASE),
    re.compile(rf"(?:^|\s){_NAME}'s\s+{_ASKED}\b", re.IGNORECASE),
    re.compile(rf"\b(?:needs?|requires?|gets?|asks?|ask(?:ing)?|have|has)\s+(?:the\s+|a\s+|an\s+|our\s+)?{_NAME}\s+to\s+"
               r"(?:approve|sign\s+off|okay|ok)\b", re.IGNORECASE),
    re.compile(rf"\b(?:have|has|let)\s+(?:the\s+|a\s+|an\s+|our\s+){_NAME}\s+(?:approve|sign\s+off|okay|ok)\b",
               re.IGNORECASE),
    # "get VP approval", "needs finance sign-off"
    re.compile(rf"\b(?:get|gets|getting|needs?|requires?|obtain|seek|with)\s+(?:the\s+|a\s+|an\s+)?{_NAME}\s+"
               rf"{_ASKED}\b", re.IGNORECASE),
    re.compile(rf"^(?:the\s+|a\s+|an\s+|our\s+)?{_NAME}\s+(?:has\s+to|have\s+to|must|needs?\s+to|should)\s+"
               r"(?:approve|sign\s+off|okay|ok)\b", re.IGNORECASE),
)
NOT_A_PERSON = frozenset(
    "it this that they them either any both each all none is isn't are aren't not doesn't don't was wasn't"
    " check decision result results score answer system api manual final formal written explicit human prior"
    " quick extra additional second another further".split()
)

# -- a point in time attached to a step ("refund it on 2026-12-01", "after 2026-12-01 09:00")

_MONTHS = (
    "january february march april may june july august september october november december".split()
)
MONTH_NUMBER = {m: i + 1 for i, m in enumerate(_MONTHS)} | {m[:3]: i + 1 for i, m in enumerate(_MONTHS)}
MONTH_NUMBER["sept"] = 9
_MONTH_ALT = "|".join(sorted(MONTH_NUMBER, key=len, reverse=True))
DATE_RE = re.compile(
    r"\s*\b(?P<prep>on|at|after|from|starting|starting\s+on|on\s+or\s+after|until|till|by|before"
    r"|no\s+later\s+than)\s+"
    r"(?:(?:mon|tues|wednes|thurs|fri|satur|sun)day,?\s+)?"
    r"(?:the\s+)?"
    r"(?:(?P<iso>\d{4}-\d{2}-\d{2}|⟦D\d+⟧)(?:[Tt ](?P<isotime>\d{1,2}:\d{2}(?::\d{2})?))?"
    r"(?P<zone>Z|[+-]\d{2}:?\d{2})?"
    rf"|(?P<month>{_MONTH_ALT})\.?\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?"
    r"(?:,?\s+(?P<year>\d{4}))?"
    rf"|(?P<day2>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<month2>{_MONTH_ALT})\.?(?:,?\s+(?P<year2>\d{{4}}))?)(?!\w)"
    r"(?:,?\s+at\s+(?P<time>\d{1,2}(?::\d{2})?\s*(?:am|pm)?|⟦N\d+⟧(?:\s*(?:am|pm))?)(?!\w))?",
    re.IGNORECASE,
)

# -- a threshold on an amount ("refunds over $1,000", "when the amount is above $500")

# "$1,000", "5k", "20%", "15 percent": a percentage is a threshold too ("discounts over 20%")
_AMOUNT = r"(?:⟦N\d+⟧|[$€£]?\s?\d[\d,]*(?:\.\d+)?(?:\s?[km]\b)?)(?:\s?%|\s+per\s?cent\b)?(?![\d,.]*\d)"
_THAN = (
    r"(?:over|above|more\s+than|greater\s+than|higher\s+than|bigger\s+than|larger\s+than|exceeds?|exceeding"
    r"|at\s+least|under|below|less\s+than|fewer\s+than|lower\s+than|at\s+most)"
)
_CMP_AMOUNT = re.compile(rf"\b{_THAN}\s+{_AMOUNT}(?:\s+or\s+(?:more|less|above|below|over|under))?", re.I)
_NOT_SUBJECT = re.compile(
    r"approv\w*|sign(?:s|ed)?|off|okays?|must|needs?|needed|requires?|required|has|have|to|should|gets?|asks?"
    r"|from|by|first|[\w-]+'s"
)
_COND_OPEN = re.compile(r"\b(?:for|on|of|when|if|whenever|where|provided|in\s+case)\s+", re.IGNORECASE)


def threshold(text: str) -> tuple[str, str] | None:
    """ "get approval for refunds over $1,000" → ("refunds over $1,000", "get approval");
    "refunds above $500 need finance's approval" → ("refunds above $500", "need finance's approval")."""
    found = _CMP_AMOUNT.search(text)
    if found is None:
        return None
    opens = list(_COND_OPEN.finditer(text[: found.start()]))
    if opens:
        start, cut = opens[-1].end(), opens[-1].start()
    else:
        # the words it is said of: "finance must approve any refund above $500" → "any refund"
        start = found.start()
        for word in reversed(list(re.finditer(r"\S+", text[: found.start()]))[-4:]):
            if _NOT_SUBJECT.fullmatch(word.group(0).lower()):
                break
            start = word.start()
        cut = start
    condition = text[start : found.end()].strip(" ,")
    if len(condition.split()) > 9:
        return None
    return condition, (text[:cut] + " " + text[found.end() :]).strip(" ,")
