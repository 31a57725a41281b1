"""Triggers from plain English, and triggers back into plain English.

    extract_triggers("Every Monday at 9am Berlin time, send the usage digest to the team.")
    → (Triggers(schedule=[cron "0 9 * * MON", Europe/Berlin]), "Send the usage digest to the team.")

The trigger phrase is cut out of the request, so the rest plans exactly as a request without it.
What is read as a trigger:

- a recurrence: "every Monday (and Thursday)", "every weekday", "on weekdays", "every day",
  "daily", "every morning", "every hour", "every 15 minutes", "weekly", "every month",
  "on the 15th of each month", "on the first (last) business day of each month" — with an
  optional time ("at 9", "at 9:30am", "at noon") and zone ("Berlin time", "in New York",
  "Europe/Berlin", "CET", "ET"). A time alone ("schedule a call for Thursday at 2pm") is not a
  trigger: it needs a word of recurrence. `daily`/`weekly`/`monthly` count only as adverbs
  ("run it weekly", "weekly at 8"), never inside a noun phrase ("the monthly churn report").
- an event at the start of the request: "When (whenever, each time) a new customer signs up, ..."
  becomes a webhook named from the event (`customer-signed-up`), whose JSON body is the inputs.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from functools import cache

from workflow.catalog import Catalog
from workflow.document import ScheduleTrigger, Triggers, WebhookTrigger, Workflow

# -- times and zones ---------------------------------------------------------------------------------

DAY_CODES = {"monday": "MON", "tuesday": "TUE", "wednesday": "WED", "thursday": "THU", "friday": "FRI",
             "saturday": "SAT", "sunday": "SUN"}
DAY_NAMES = {code: name.capitalize() for name, code in DAY_CODES.items()}
_DAY = r"(?:mon|tues|wednes|thurs|fri|satur|sun)day"

ZONE_ABBREVIATIONS = {
    "utc": "UTC", "gmt": "UTC", "cet": "Europe/Berlin", "cest": "Europe/Berlin",
    "et": "America/New_York", "est": "America/New_York", "edt": "America/New_York",
    "eastern": "America/New_York", "ct": "America/Chicago", "cst": "America/Chicago",
    "cdt": "America/Chicago", "central": "America/Chicago", "mt": "America/Denver",
    "mountain": "America/Denver", "pt": "America/Los_Angeles", "pst": "America/Los_Angeles",
    "pdt": "America/Los_Angeles", "pacific": "America/Los_Angeles", "bst": "Europe/London",
    "uk": "Europe/London", "ist": "Asia/Kolkata", "jst": "Asia/Tokyo", "aest": "Australia/Sydney",
}


@cache
def _cities() -> dict[str, str]:
    """`berlin` → `Europe/Berlin`, `new york` → `America/New_York`, from the zone database itself."""
    found: dict[str, str] = {}
    for name in sorted(zoneinfo.available_timezones()):
        if "/" not in name or name.startswith(("Etc/", "SystemV/", "US/")):
            continue
        city = name.rsplit("/", 1)[1].replace("_", " ").lower()
        found.setdefault(city, name)
    return found


def zone_named(text: str) -> str | None:
    """An IANA zone for a city, an abbreviation or an IANA name; None when it names no zone."""
    key = text.strip().lower()
    if key in ZONE_ABBREVIATIONS:
        return ZONE_ABBREVIATIONS[key]
    for name in zoneinfo.available_timezones():
        if name.lower() == key:
            return name
    return _cities().get(key)


_TIME = (r"at\s+(?:(?P<hour>\d{1,2})(?:[:.](?P<minute>\d{2}))?(?:\s*(?P<ampm>[ap]\.?\s?m\b\.?))?"
         r"|(?P<named>noon|midnight))")
_ZONE = (r"(?:\s*\(?(?P<iana>[A-Za-z]+/[A-Za-z_]+(?:/[A-Za-z_]+)?)\)?"
         r"|\s+(?P<city>[A-Z][A-Za-z]+(?:\s[A-Z][A-Za-z]+)?)\s+time\b"
         r"|\s+(?P<abbr>UTC|GMT|CET|CEST|ET|EST|EDT|CT|CST|CDT|MT|PT|PST|PDT|BST|IST|JST|AEST)\b"
         r"|\s+(?P<word>Eastern|Central|Mountain|Pacific)(?:\s+time)?\b"
         r"|\s+in\s+(?P<incity>[A-Z][A-Za-z]+(?:\s[A-Z][A-Za-z]+)?))")
_TIME_RE = re.compile(r"\s*,?\s*" + _TIME, re.IGNORECASE)
_ZONE_RE = re.compile(_ZONE)  # case-sensitive: cities and abbreviations are capitalized


@dataclass
class _Period:
    """What a recurrence phrase said before its time was read."""

    minute: str = "0"
    hour: str = "9"
    dom: str = "*"
    dow: str = "*"
    business_day: str | None = None
    has_time: bool = False
    """The phrase fixes its own time (every 15 minutes, every hour): no "at ..." follows."""


_DAYLIST = rf"{_DAY}s?(?:\s*(?:,\s*|,?\s*and\s+|\s*&\s*){_DAY}s?)*"
_PERIODS: list[tuple[str, re.Pattern[str]]] = [
    ("business_day", re.compile(r"\b(?:on\s+)?(?:the\s+)?(?P<which>first|last)\s+business\s+day\s+of\s+"
                                r"(?:each|every|the)\s+month\b", re.I)),
    ("month_day", re.compile(r"\b(?:on\s+)?the\s+(?P<dom>\d{1,2})(?:st|nd|rd|th)?\s+(?:day\s+)?of\s+"
                             r"(?:each|every|the)\s+month\b", re.I)),
    ("month_day", re.compile(r"\b(?:every|each)\s+month\s+on\s+the\s+(?P<dom>\d{1,2})(?:st|nd|rd|th)?\b",
                             re.I)),
    ("minutes", re.compile(r"\b(?:every|each)\s+(?P<n>\d{1,2})\s+minutes?\b", re.I)),
    ("hours", re.compile(r"\b(?:every|each)\s+(?P<n>\d{1,2})\s+hours?\b", re.I)),
    ("hourly", re.compile(r"\b(?:every|each)\s+hour\b", re.I)),
    ("weekdays", re.compile(r"\b(?:every|each)\s+(?:weekday|business\s+day|working\s+day)"
                            r"(?:\s+(?P<part>morning|evening|night))?\b"
                            r"|\bon\s+weekdays\b|\b(?:every\s+day\s+)?monday\s+(?:to|through|thru)\s+friday\b",
                            re.I)),
    ("days", re.compile(rf"\b(?:every|each|on)\s+(?P<days>{_DAYLIST})"
                        r"(?:\s+(?P<part>morning|evening|night))?\b", re.I)),
    ("daily", re.compile(r"\b(?:every|each)\s+(?:day|(?P<part>morning|evening|night))\b", re.I)),
    ("weekly", re.compile(r"\b(?:every|each)\s+week\b", re.I)),
    ("monthly", re.compile(r"\b(?:every|each)\s+month\b", re.I)),
    # adverbs: only at a clause edge or before "at", so "the monthly churn report" stays a report
    ("adverb", re.compile(r"(?:(?<=^)|(?<=[\s,;(]))(?P<adverb>hourly|daily|nightly|weekly|monthly)"
                          r"(?=\s*(?:[,.;:)]|$|at\s))", re.I)),
]
_PARTS_OF_DAY = {"morning": "9", "evening": "18", "night": "0"}


def _period(kind: str, match: re.Match[str]) -> _Period:
    groups = match.groupdict()
    part = groups.get("part")
    hour = _PARTS_OF_DAY[part.lower()] if part else "9"
    if kind == "business_day":
        return _Period(business_day=groups["which"].lower())
    if kind == "month_day":
        return _Period(dom=str(int(groups["dom"])))
    if kind == "minutes":
        return _Period(minute=f"*/{int(groups['n'])}", hour="*", has_time=True)
    if kind == "hours":
        return _Period(hour=f"*/{int(groups['n'])}", has_time=True)
    if kind == "hourly" or (kind == "adverb" and groups["adverb"].lower() == "hourly"):
        return _Period(hour="*", has_time=True)
    if kind == "weekdays":
        return _Period(hour=hour, dow="MON-FRI")
    if kind == "days":
        codes: list[str] = []
        for name in re.findall(_DAY, groups["days"], re.I):
            code = DAY_CODES[name.lower()]
            if code not in codes:
                codes.append(code)
        return _Period(hour=hour, dow=",".join(codes))
    if kind == "daily" or (kind == "adverb" and groups["adverb"].lower() in {"daily", "nightly"}):
        nightly = kind == "adverb" and groups["adverb"].lower() == "nightly"
        return _Period(hour="0" if nightly else hour)
    if kind == "weekly" or (kind == "adverb" and groups["adverb"].lower() == "weekly"):
        return _Period(dow="MON")
    return _Period(dom="1")  # monthly


def _clock_time(match: re.Match[str]) -> tuple[int, int] | None:
    named = match.group("named")
    if named:
        return (12, 0) if named.lower() == "noon" else (0, 0)
    hour = int(match.group("hour"))
    minute = int(match.group("minute") or 0)
    ampm = (match.group("ampm") or "").replace(".", "").replace(" ", "").lower()
    if ampm == "pm" and hour < 12:
        hour += 12
    elif ampm == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59:
        return None
    return hour, minute


def _zone(match: re.Match[str]) -> str | None:
    for group in ("iana", "city", "abbr", "word", "incity"):
        text = match.group(group)
        if text:
            return zone_named(text)
    return None


@dataclass
class _Found:
    start: int
    end: int
    trigger: ScheduleTrigger


def _find_schedule(text: str) -> _Found | None:
    for kind, pattern in _PERIODS:
        match = pattern.search(text)
        if match is None:
            continue
        period = _period(kind, match)
        start, end = match.start(), match.end()
        hour, minute = period.hour, period.minute
        if not period.has_time:
            after = _TIME_RE.match(text, end)
            before = re.search(r"\b" + _TIME + r"\s*(?:,\s*)?$", text[:start], re.I)
            for found, is_after in ((after, True), (before, False)):
                if found is None:
                    continue
                clock = _clock_time(found)
                if clock is None:
                    continue
                hour, minute = str(clock[0]), str(clock[1])
                if is_after:
                    end = found.end()
                else:
                    start = found.start()
                break
        timezone = "UTC"
        zone = _ZONE_RE.match(text, end)
        if zone is not None and (named := _zone(zone)) is not None:
            timezone, end = named, zone.end()
        cron = f"{minute} {hour} {period.dom} * {period.dow}"
        return _Found(start, end, ScheduleTrigger(cron=cron, timezone=timezone,
                                                  business_day=period.business_day))
    return None


# -- events → webhooks -------------------------------------------------------------------------------

_EVENT_RE = re.compile(r"^\s*(?:when|whenever|each\s+time|every\s+time)\s+(?P<event>[^,;:.]+?)\s*[,;:]\s*"
                       r"(?:then\s+)?", re.I)
_TRAILING_EVENT_RE = re.compile(r"\s*,?\s+(?:whenever|every\s+time|each\s+time)\s+(?P<event>[^,;:.]+?)"
                                r"\s*(?P<stop>[.!]?\s*)$", re.I)
_STATE_RE = re.compile(r"\b(?:is|are|was|were|'s)\s+(?:over|above|under|below"
                       r"|(?:more|less|greater|fewer)\s+than|at\s+(?:least|most))\s"
                       # "when the discount exceeds 15%", "when the order tops $5,000": a number compared
                       r"|\b(?:exceeds?|exceeding|tops|goes\s+(?:over|above|below|under)|falls\s+(?:below|under)"
                       r"|drops\s+(?:below|under)|rises\s+above|has\s+(?:over|more\s+than|fewer\s+than|less\s+than))"
                       r"\s+[$€£]?\d", re.I)
_DETERMINERS = {"a", "an", "the", "new", "any", "some", "our", "their", "its", "one", "of"}
_AUXILIARIES = {"is", "are", "was", "were", "gets", "get", "got", "has", "have", "been", "becomes"}
_IRREGULAR = {"pays": "paid", "buys": "bought", "sends": "sent", "leaves": "left", "pay": "paid",
              "buy": "bought", "signs": "signed", "sign": "signed", "begins": "began", "gives": "given",
              "makes": "made", "takes": "taken", "writes": "written", "fails": "failed", "fail": "failed"}
_VERBS = {"signs", "registers", "subscribes", "unsubscribes", "churns", "pays", "cancels", "upgrades",
          "downgrades", "submits", "buys", "orders", "fails", "arrives", "expires", "opens", "closes",
          "joins", "leaves", "books", "renews", "requests", "completes", "starts", "ends", "bounces",
          "replies", "responds", "converts", "applies", "checks", "logs", "reaches", "exceeds", "drops",
          "lands", "ships", "sends", "creates", "updates", "deletes", "places", "files", "reports",
          "posts", "comes", "goes", "moves", "changes", "succeeds", "sign", "register", "subscribe",
          "pay", "cancel", "submit", "fail", "arrive", "expire", "join", "renew", "complete", "churn"}
_PARTICLES = {"up", "in", "out", "off", "over", "back", "through", "down"}


def _participle(verb: str) -> str:
    verb = verb.lower()
    if verb in _IRREGULAR:
        return _IRREGULAR[verb]
    if verb.endswith("ed"):
        return verb
    stem = verb[:-1] if verb.endswith("s") and not verb.endswith("ss") else verb
    if stem.endswith("ie"):
        return stem[:-2] + "ied"
    if stem.endswith("e"):
        return stem + "d"
    if re.fullmatch(r".*[^aeiou]y", stem):
        return stem[:-1] + "ied"
    if stem in {"cancel", "label", "travel"}:
        return stem + "led"
    if re.fullmatch(r"(?:[^aeiou]*)[aeiou][bdgmnprt]", stem):  # one-syllable CVC: drop → dropped
        return stem + stem[-1] + "ed"
    return stem + "ed"


def webhook_name(event: str) -> str | None:
    """`a new customer signs up` → `customer-signed-up`; None when no subject and verb are found."""
    words = [w for w in re.findall(r"[A-Za-z][A-Za-z0-9']*", event.lower()) if w not in _DETERMINERS]
    for index, word in enumerate(words):
        if word in _AUXILIARIES and index > 0 and index + 1 < len(words):
            subject, rest = words[:index], words[index + 1:]
            if rest[0] in {"been", "being"} and len(rest) > 1:
                rest = rest[1:]
            # after "is"/"gets" the verb is already a participle ("is paid", "gets cancelled")
            verb, tail = rest[0], rest[1:2] if rest[1:2] and rest[1] in _PARTICLES else []
            return _slug([*subject, verb, *tail])
        if word in _VERBS and index > 0:
            following = words[index + 1:index + 2]
            tail = following if following and following[0] in _PARTICLES else []
            return _slug([*words[:index], _participle(word), *tail])
    return None


def _slug(words: list[str]) -> str | None:
    words = [w.replace("'s", "").replace("'", "") for w in words]
    name = "-".join(w for w in words if w)[:80].strip("-")
    return name if name.count("-") >= 1 else None


def _approval_words() -> re.Pattern[str]:
    from planner.lexicon import lexicon

    return lexicon().approval


def _find_webhook(text: str) -> tuple[int, int, WebhookTrigger] | None:
    for pattern in (_EVENT_RE, _TRAILING_EVENT_RE):
        match = pattern.search(text)
        if match is None:
            continue
        if _STATE_RE.search(match.group("event")):
            continue  # "when the refund is over $500, ...": a condition on the run's data, not an event
        if _approval_words().search(match.group("event")):
            continue  # "when finance signs off, ...": a person's decision is a core.approval step
        name = webhook_name(match.group("event"))
        if name is None:
            continue
        end = match.end() if pattern is _EVENT_RE else match.start("stop")
        return match.start(), end, WebhookTrigger(name=name)
    return None


# -- the entry points --------------------------------------------------------------------------------


def _cut(text: str, start: int, end: int) -> str:
    rest = (text[:start] + " " + text[end:]).strip()
    rest = re.sub(r"\s+([,.;:!?])", r"\1", rest)
    rest = re.sub(r"\s{2,}", " ", rest)
    rest = re.sub(r",\s*and\s*,", ",", rest, flags=re.I)
    rest = re.sub(r"^(?:[,;:\s]+|(?:then|and)\b[\s,;:]*)+", "", rest, flags=re.I)
    rest = re.sub(r"[,;:]\s*([.!?]|$)", r"\1", rest)
    rest = re.sub(r"\(\s*\)", "", rest).strip()
    return rest[:1].upper() + rest[1:] if rest else rest


def extract_triggers(request: str) -> tuple[Triggers | None, str]:
    """The triggers a request describes, and the request without the words that described them."""
    rest = request
    schedules: list[ScheduleTrigger] = []
    webhook: WebhookTrigger | None = None
    for _ in range(3):  # "every Monday at 9 and on the first business day of each month"
        found = _find_schedule(rest)
        if found is None:
            break
        schedules.append(found.trigger)
        rest = _cut(rest, found.start, found.end)
        rest = re.sub(r"^and\s+", "", rest, flags=re.I)
    hook = _find_webhook(rest)
    if hook is not None:
        webhook = hook[2]
        rest = _cut(rest, hook[0], hook[1])
    if not schedules and webhook is None:
        return None, request
    return Triggers(schedule=schedules, webhook=webhook), rest


def _time_text(minute: str, hour: str) -> str:
    return f"{int(hour):02d}:{int(minute):02d}"


def _days_text(dow: str) -> str:
    if dow == "MON-FRI":
        return "every weekday (Monday to Friday)"
    names = [DAY_NAMES.get(code.upper(), code) for code in dow.split(",")]
    return "every " + (" and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0])


def describe_schedule(trigger: ScheduleTrigger) -> str:
    """`0 9 * * MON` in Europe/Berlin → "every Monday at 09:00 (Europe/Berlin)"; cron it cannot
    put in words is quoted as it is."""
    parts = trigger.cron.split()
    zone = f" ({trigger.timezone})"
    if len(parts) != 5:
        return f"on cron `{trigger.cron}`{zone}"
    minute, hour, dom, month, dow = parts
    simple_time = minute.isdigit() and hour.isdigit()
    if trigger.business_day and simple_time and dom == "*" and month == "*" and dow == "*":
        text = f"on the {trigger.business_day} business day of each month at {_time_text(minute, hour)}"
    elif minute.startswith("*/") and hour == "*" and dom == month == dow == "*":
        text = f"every {minute[2:]} minutes"
    elif minute.isdigit() and hour == "*" and dom == month == dow == "*":
        text = "every hour" + (f" at minute {int(minute)}" if minute != "0" else "")
    elif minute.isdigit() and hour.startswith("*/") and dom == month == dow == "*":
        text = f"every {hour[2:]} hours"
    elif simple_time and month == "*" and dom == "*" and dow == "*":
        text = f"every day at {_time_text(minute, hour)}"
    elif simple_time and month == "*" and dom == "*" and re.fullmatch(r"[A-Za-z,\-]+", dow):
        text = f"{_days_text(dow.upper())} at {_time_text(minute, hour)}"
    elif simple_time and month == "*" and dom.isdigit() and dow == "*":
        text = f"on day {int(dom)} of each month at {_time_text(minute, hour)}"
    else:
        text = f"on cron `{trigger.cron}`"
        if trigger.business_day:
            text += f", on the {trigger.business_day} business day of the month only"
    if trigger.missed == "catch_up":
        zone += "; a time missed while the service was down runs once when it is back"
    return text + zone


def describe_webhook(trigger: WebhookTrigger) -> str:
    secret = (f"signed with the secret in ${trigger.secret_env}" if trigger.secret_env
              else "signed with the webhook's secret")
    return (f"when a signed POST arrives at /hooks/{trigger.name} ({secret}); "
            "its JSON body is the run's inputs")


def describe_triggers(triggers: Triggers | None) -> str:
    """One sentence for an explanation; "" when there are no triggers."""
    if triggers is None:
        return ""
    parts = [describe_schedule(s) for s in triggers.schedule]
    if triggers.webhook is not None:
        parts.append(describe_webhook(triggers.webhook))
    if not parts:
        return ""
    return "Runs by itself " + "; and ".join(parts) + "."


# -- attaching to a plan -------------------------------------------------------------------------------


def attach_triggers(workflow: Workflow, triggers: Triggers | None, catalog: Catalog, request: str
                    ) -> list[str]:
    """Put the request's triggers on a planned workflow (keeping the whole request as its
    description); returns warnings. A schedule fires with fixed inputs, so when the plan needs run
    inputs the schedule gives none, the schedule is left off (the plan stays valid) and the warning
    says exactly what to add."""
    from workflow.validator import validate

    if triggers is None:
        return []
    workflow.description = request.strip()
    workflow.triggers = triggers
    problems = [p for p in validate(workflow, catalog).errors if p.code == "trigger_inputs"]
    if not problems:
        return []
    required = list((workflow.inputs or {}).get("required", []))
    warnings = [f"{describe_schedule(s)} was read as a schedule, but a scheduled run needs values for "
                f"its inputs ({', '.join(required) or 'see the inputs schema'}); add them as "
                f"`triggers.schedule[{i}].inputs` (cron `{s.cron}`, timezone {s.timezone})"
                for i, s in enumerate(triggers.schedule)]
    kept = Triggers(webhook=triggers.webhook) if triggers.webhook is not None else None
    workflow.triggers = kept
    return warnings
