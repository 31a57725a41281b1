"""Values written in the request (emails, amounts, ids, names, counts) placed into a step's
`with`, typed by the action's input schema."""

from __future__ import annotations

import re
from typing import Any

from planner.lexicon import Lexicon, stem, words
from planner.text import Masked
from workflow.catalog import ActionSpec

_EMAIL_RE = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_PHONE_RE = re.compile(
    r"(?<![\w-])(?:\+\d[\d\s().-]{7,16}\d|\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}|\d{10})(?![\w-])"
)
MONEY_RE = re.compile(r"(?<!\w)[$€£]\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?(?:\s?(k|m)\b)?")
_CHANNEL_RE = re.compile(r"(?<![\w&])#[\w-]+")
_ID_RE = re.compile(r"\b(?=[A-Za-z0-9_-]*\d)[A-Za-z]+[_-][A-Za-z0-9_-]+\b|\b[a-z]{1,4}_[A-Za-z0-9_]+\b")
_NUMBER_NOUN_RE = re.compile(r"\b(\d+)\s+([a-z][a-z-]+)")
_REGION_RE = re.compile(r"\b(?:us|eu|ap|sa|ca|me|af|uk|au|jp|in)-[a-z]+(?:-\d)?\b")
_MINOR_UNITS = re.compile(r"minor unit|cents|smallest (?:currency )?unit|pence", re.IGNORECASE)
# what a message says: "post in #ops that the deal closed", "text them saying it shipped",
# "let #billing know it's out"
_SAYING_RE = re.compile(
    r"\b(?:saying|to\s+say|with\s+the\s+(?:message|text|note)|let\s+[#\w\s-]{1,30}?\s+know(?:\s+that)?"
    r"|tell\s+#[\w-]+(?:\s+channel)?(?:\s+that)?)\s*:?\s+"
    r"(?P<said>.+)$",
    re.IGNORECASE,
)
# "that" only after where or to whom the message goes: "the report that finance made" is not one
_THAT_RE = re.compile(r"(?P<before>[#\w@.+-]+)\s*,?\s+that\s+(?P<said>.+)$", re.IGNORECASE)
_TOLD = {
    "channel",
    "slack",
    "teams",
    "chat",
    "room",
    "thread",
    "them",
    "him",
    "her",
    "us",
    "everyone",
    "everybody",
    "post",
    "announce",
    "say",
    "tell",
    "mention",
    "share",
    "confirm",
    "notify",
}
_MESSAGE_KEYS = {"text", "message", "body", "content", "msg", "message_text"}
_MESSAGE_DESCRIPTION = re.compile(r"\bmessage (?:text|body)\b|\btext of the message\b", re.IGNORECASE)


def message_said(raw: str, lex: Lexicon) -> str | None:
    """What a message should say when the request words it ("post in #ops that the deal closed")."""
    found = _SAYING_RE.search(raw)
    if found is None:
        found = _THAT_RE.search(raw)
        before = found.group("before").lower() if found else ""
        # a channel, an address, a phone number, "them", "the team", "post that ..."
        told = before.startswith(("#", "+")) or "@" in before or before in _TOLD or before.isdigit()
        if found is None or not (told or stem(before) in lex.people):
            return None
    said = found.group("said").strip(" .")
    return said[:1].upper() + said[1:] or None


def _message_key(props: dict[str, Any], out: dict[str, Any]) -> str | None:
    """The input that takes a message's text (`text`, `body`, `message`, ...), by name or description."""
    for key, schema in props.items():
        if key in out or not isinstance(schema, dict) or not plain_string(schema):
            continue
        if key in _MESSAGE_KEYS or _MESSAGE_DESCRIPTION.search(str(schema.get("description", ""))):
            return key
    return None


_ID_WORDS = {"id", "number", "no", "ref", "reference", "code", "key", "sku"}


# ISO 4217 codes people write next to an amount ("CHF 1,200", "500 SEK")
_ISO_CODES = frozenset(
    "USD EUR GBP JPY CHF CAD AUD NZD CNY HKD SGD INR SEK NOK DKK PLN CZK HUF MXN BRL ZAR KRW TRY ILS AED"
    " SAR THB IDR MYR PHP TWD RUB ARS CLP COP PEN NGN KES EGP VND UAH RON BGN ISK".split()
)
_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}
# currency words, longest first ("canadian dollars" before "dollars")
_CURRENCY_NAMES = (
    (r"canadian\s+dollars?", "CAD"),
    (r"australian\s+dollars?", "AUD"),
    (r"swiss\s+francs?", "CHF"),
    (r"(?:us|u\.s\.|american)\s+dollars?", "USD"),
    (r"dollars?|bucks", "USD"),
    (r"euros?", "EUR"),
    (r"pounds?(?:\s+sterling)?|sterling|quid", "GBP"),
    (r"yen", "JPY"),
    (r"rupees?", "INR"),
)
_AMOUNT = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_CODE_AMOUNT = re.compile(
    rf"(?<![\w.])(?:(?P<pre>[A-Za-z]{{3}})\s?(?P<a1>{_AMOUNT})(?!\s*%)|(?P<a2>{_AMOUNT})\s?(?:(?P<k>k|m)\s)?"
    rf"(?P<post>[A-Za-z]{{3}}|(?:{'|'.join(p for p, _ in _CURRENCY_NAMES)}))\b)",
    re.IGNORECASE,
)


def currency_code(word: str) -> str | None:
    """The ISO code a currency word or code names ("dollars", "euro", "EUR", "swiss francs"), else None."""
    if word.upper() in _ISO_CODES and (word.isupper() or word.lower() in {"usd", "eur", "gbp"}):
        return word.upper()
    for pattern, code in _CURRENCY_NAMES:
        if re.fullmatch(pattern, word, re.IGNORECASE):
            return code
    return None


def currency_said(raw: str) -> tuple[str, float | None] | None:
    """The currency a request's amount is in, and that amount when only the code or word says it is
    money: "$1,200" → (USD, None), "1,200 euros" → (EUR, 1200.0), "CHF 50" → (CHF, 50.0); None
    when no currency is said."""
    money = MONEY_RE.search(raw)
    if money is not None:
        return _SYMBOLS[money.group(0)[0]], None
    for found in _CODE_AMOUNT.finditer(raw):
        word = found.group("pre") or found.group("post")
        code = currency_code(re.sub(r"\s+", " ", word))
        if code is None:
            continue
        amount = float((found.group("a1") or found.group("a2")).replace(",", ""))
        amount *= {"k": 1000, "m": 1_000_000}.get((found.group("k") or "").lower(), 1)
        return code, amount
    symbol = re.search(r"[¥]\s?(\d[\d,]*(?:\.\d+)?)", raw)
    if symbol is not None:
        return "JPY", float(symbol.group(1).replace(",", ""))
    # "bill them in EUR", "in euros", "currency GBP": the currency alone
    for found in _IN_CURRENCY.finditer(raw):
        code = currency_code(re.sub(r"\s+", " ", found.group("cur")))
        if code is not None:
            return code, None
    return None


_IN_CURRENCY = re.compile(
    rf"\b(?:in|currency(?:\s+(?:of|is))?|pay(?:s|ing)?\s+in)\s+(?P<cur>[A-Za-z]{{3}}|"
    rf"(?:{'|'.join(p for p, _ in _CURRENCY_NAMES)}))\b",
    re.IGNORECASE,
)


def currency_input(key: str, schema: dict[str, Any]) -> bool:
    """An input that takes a currency code (`currency`, `currency_code`, `settlement_currency`)."""
    return "currency" in key and "string" in _types(schema)


def as_currency(code: str, schema: dict[str, Any]) -> str | None:
    """`code` ("USD") as the input takes it: the enum's own spelling, the case its pattern, default or
    description shows ("defaults to usd"), else upper case; None when the enum has no such code."""
    enum = schema.get("enum")
    if isinstance(enum, list):
        return next((str(e) for e in enum if str(e).upper() == code), None)
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        for candidate in (code, code.lower()):
            try:
                if re.fullmatch(pattern.strip("^$"), candidate) or re.search(pattern, candidate):
                    return candidate
            except re.error:
                break
        return None
    described = re.findall(r"[A-Za-z]{3}", str(schema.get("description", "")))
    shown = [str(schema.get("default") or ""), *described]
    for example in shown:
        if example.upper() in _ISO_CODES and example.islower():
            return code.lower()
        if example.upper() in _ISO_CODES and example.isupper():
            return code
    return code


def money_value(match: re.Match[str]) -> float:
    """ "$5,000" → 5000.0, "$1.5k" → 1500.0 (a match of `MONEY_RE`)."""
    amount = float(match.group(1).replace(",", "")) + (float(match.group(2) or 0) / 100)
    return amount * {"k": 1000, "m": 1_000_000}.get((match.group(3) or "").lower(), 1)


def money_input(key: str, schema: dict[str, Any]) -> bool:
    """An input that takes an amount of money (`amount`, `total`, `unit_price`, ...)."""
    return any(w in key for w in ("amount", "price", "total", "fee", "limit")) and bool(
        _types(schema) & {"integer", "number"}
    )


def in_units(amount: float, schema: dict[str, Any]) -> Any:
    """An amount of money as the input takes it: in minor units (cents) when its description says so."""
    value = amount * 100 if _MINOR_UNITS.search(str(schema.get("description", ""))) else amount
    return typed(value, schema)


def _types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    if isinstance(kind, list):
        return {str(k) for k in kind}
    return {str(kind)} if kind else set()


def typed(value: Any, schema: dict[str, Any]) -> Any:
    """`value` converted to what the schema asks for, or None when it cannot be."""
    kinds = _types(schema)
    if not kinds:
        return value
    if "integer" in kinds:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return round(number)
    if "number" in kinds:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return int(number) if number.is_integer() else number
    if "string" in kinds:
        text = str(value)
        if "enum" in schema and text not in schema["enum"]:
            return None
        return text
    if "array" in kinds:
        return value if isinstance(value, list) else [value]
    return value


# "the account for Acme", "onboard Acme Robotics": the capitalised name a clause is about
_ENTITY_RE = re.compile(
    r"\b(for|named|called)\s+((?:[A-Z][\w&'-]*)(?:\s+(?:[A-Z][\w&'-]*|&))*)"
    r"(?=\s*(?:[,;.:!?(]|$|\s+(?:and|then|in|on|with|to|at|by|from|if|once|when|after|before|so|as|now"
    r"|today|tomorrow)\b))"
)
# "add Initech to the CRM", "register the company Acme Inc. in billing": the name is the verb's
# object, said before where it goes (all-capital words are products and systems: "add SSO to it")
_OBJECT_RE = re.compile(
    r"^\s*[A-Za-z]+\s+(?:(?:the\s+)?(?:company|client|customer|business|organi[sz]ation)\s+)?"
    r"((?:[A-Z](?![A-Z\d]*\b)[\w&'-]*)(?:\s+(?:[A-Z][\w&'-]*|&))*)"
    r"(?=\s*(?:[,;.:!?(]|$|\s+(?:to|in|into|onto|as|and|then)\b))"
)
_SUFFIXES = {"Inc", "Ltd", "Co", "Corp", "Bros", "Pty", "Pte", "Pvt"}
_NAME_KEYS = {"name", "company_name", "account_name", "customer_name", "organization_name"}
# inputs that take an organisation's name ("company: The customer's company name.")
ORG_KEYS = frozenset(
    {
        "company",
        "company_name",
        "organization",
        "organisation",
        "organization_name",
        "organisation_name",
        "org",
        "org_name",
        "business",
        "business_name",
        "client_name",
        "account_name",
    }
)
_NOT_NAMES = {
    "I",
    "We",
    "Me",
    "Us",
    "Them",
    "It",
    "The",
    "A",
    "An",
    "Customer",
    "Company",
    "Account",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
}


def names_entity(key: str) -> bool:
    """An input that takes the name of whom or what the request is about (`name`, `company`)."""
    return key in _NAME_KEYS or key in ORG_KEYS


def plain_string(schema: dict[str, Any]) -> bool:
    """A free-text string input: no format, enum or pattern that a name might not fit."""
    return _types(schema) == {"string"} and not ({"format", "enum", "pattern"} & set(schema))


# what a company's name names: "the account for Acme" is named Acme, "a workspace for Teal" is not
_ORGANISATION_RECORDS = ("account", "company", "customer", "client")


def object_name(raw: str) -> str | None:
    """The capitalised name that is the object of the clause's verb ("add Initech to the CRM" →
    Initech), or None."""
    found = _OBJECT_RE.match(raw)
    return _name(raw, found, 1) if found is not None else None


def _name(raw: str, match: re.Match[str], group: int) -> str | None:
    value = match.group(group).strip()
    if value.split()[0] in _NOT_NAMES:
        return None
    if value.split()[-1] in _SUFFIXES and raw[match.end() : match.end() + 1] == ".":
        value += "."  # "Acme Inc."
    return value


def _organisation_record(action: ActionSpec, lex: Lexicon) -> bool:
    """The action acts on an organisation's own record (an account, a customer), not a workspace."""
    resource = stem(action.name.rsplit(".", 1)[-1].split("_")[-1])
    own = {resource, *lex.single.get(resource, ())}
    records = {c for r in _ORGANISATION_RECORDS for c in (stem(r), *lex.single.get(stem(r), ()))}
    return bool(own & records)


def entity_name(raw: str, action: ActionSpec | None = None, lex: Lexicon | None = None) -> str | None:
    """The capitalised name the text is about ("the account for Acme" → Acme, "add Initech to the
    CRM" → Initech), or None. Given the action, "for X" and the verb's object name only an
    organisation's own record (an account, a customer): "invite Maria to the workspace" is a user."""
    record = action is None or lex is None or _organisation_record(action, lex)
    for match in _ENTITY_RE.finditer(raw):
        value = _name(raw, match, 2)
        if value is not None and (record or match.group(1) != "for"):
            return value
    return object_name(raw) if record else None


def field_matches(field: str, noun: str, lex: Lexicon) -> bool:
    base = field[:-3] if field.endswith("_id") else field
    parts = base.split("_")
    s = stem(noun)
    if s in {stem(p) for p in parts}:
        return True
    concepts = set(lex.single.get(s, ()))
    return any(concepts & set(lex.single.get(stem(p), ())) for p in parts)


def fill_literals(
    action: ActionSpec, text: str, masked: Masked, lex: Lexicon, quoted_item: str | None = None
) -> dict[str, Any]:
    """Inputs of `action` whose values the item's text gives."""
    raw = masked.unmask(text)
    props = action.input_properties
    out: dict[str, Any] = {}

    def free(predicate: Any) -> list[str]:
        return [k for k, s in props.items() if k not in out and isinstance(s, dict) and predicate(k, s)]

    emails = _EMAIL_RE.findall(raw)
    for email in emails:
        for key in free(lambda k, s: s.get("format") == "email" or "email" in k or k in {"to", "recipient"}):
            value = [email] if "array" in _types(props[key]) else email
            out[key] = value
            break
    for phone in _PHONE_RE.findall(raw):
        for key in free(lambda k, s: "phone" in k or (k == "to" and "email" not in action.name)):
            out[key] = re.sub(r"[^\d+]", "", phone)
            break
    for match in MONEY_RE.finditer(raw):
        amount = money_value(match)
        for key in free(lambda k, s: money_input(k, s)):
            out[key] = in_units(amount, props[key])
            break
    currency = currency_said(raw)
    if currency is not None:
        code, amount_said = currency
        if amount_said is not None:  # "1,200 euros": the amount the code makes money of
            for key in free(lambda k, s: money_input(k, s)):
                out[key] = in_units(amount_said, props[key])
                break
        for key in free(lambda k, s: currency_input(k, s)):
            out[key] = as_currency(code, props[key])
            break
    for channel in _CHANNEL_RE.findall(raw):
        for key in free(lambda k, s: "channel" in k):
            out[key] = channel
            break
    region = _REGION_RE.search(raw)
    if region:
        for key in free(lambda k, s: "region" in k):
            out[key] = region.group(0)
    _ids(raw, props, out, lex)
    _quoted(action, text, masked, props, out, lex, quoted_item)
    message_key = _message_key(props, out)
    said = message_said(raw, lex) if message_key is not None else None
    if message_key is not None and said is not None:
        out[message_key] = said
    entity = entity_name(raw, action, lex)
    if entity is not None:
        for key in free(lambda k, s: (k in _NAME_KEYS or k in ORG_KEYS) and plain_string(s)):
            out[key] = entity
            break
    for match in _NUMBER_NOUN_RE.finditer(raw):
        count, noun = int(match.group(1)), match.group(2)
        for key in free(lambda k, s: _types(s) & {"integer", "number"} and not k.endswith("amount")):
            if field_matches(key, noun, lex) or (key == "quantity" and noun.endswith("s")):
                out[key] = typed(count, props[key])
                break
    for key, value in list(out.items()):
        if value is None:
            del out[key]
    return out


def _ids(raw: str, props: dict[str, Any], out: dict[str, Any], lex: Lexicon) -> None:
    tokens = list(re.finditer(r"[\w@.+#-]+", raw))
    for i, tok in enumerate(tokens):
        value = tok.group(0).rstrip(".-")
        is_id = bool(_ID_RE.fullmatch(value)) or value.isdigit()
        if not is_id or "@" in value:
            continue
        before = [t.group(0).lower() for t in tokens[max(0, i - 2) : i]]
        nouns = [b for b in reversed(before) if b.isalpha() and b not in _ID_WORDS]
        for noun in nouns[:1]:
            for key, schema in props.items():
                if key in out or not isinstance(schema, dict) or "string" not in _types(schema):
                    continue
                id_like = key.endswith("_id") or key in {"sku", "reference", "number"}
                if id_like and (field_matches(key, noun, lex) or (key == "sku" and noun == "sku")):
                    out[key] = value
                    break


def _quoted(
    action: ActionSpec,
    text: str,
    masked: Masked,
    props: dict[str, Any],
    out: dict[str, Any],
    lex: Lexicon,
    quoted_item: str | None,
) -> None:
    quotes = re.finditer(r"⟦Q\d+⟧", text)
    for match in quotes:
        value = masked.table[match.group(0)].strip("'\"“”‘’")
        if quoted_item is not None and match.group(0) in text and value != quoted_item:
            # one step of "turn on 'a' and 'b'": it carries only its own name
            continue
        near = words(masked.plain(text[max(0, match.start() - 40) : match.start()]))[-2:]
        near += words(masked.plain(text[match.end() : match.end() + 30]))[:2]
        strings = [
            k
            for k, s in props.items()
            if k not in out
            and isinstance(s, dict)
            and "string" in _types(s)
            and s.get("format") not in {"email", "uri", "date-time"}
        ]
        chosen = next((k for k in strings for n in near if field_matches(k, n, lex)), None)
        if chosen is None and any(n in {"named", "called", "name"} for n in near):
            chosen = next((k for k in strings if k in {"name", "title"}), None)
        if chosen is None:
            plain_strings = [k for k in strings if not k.endswith("_id")]
            required = [k for k in action.required_inputs if k in plain_strings]
            chosen = next(iter(required or plain_strings), None)
        if chosen is not None:
            out[chosen] = typed(value, props[chosen])
