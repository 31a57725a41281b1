"""Cutting a request into sentences, segments and items without being fooled by its literals.

Parentheses, quoted names, emails, paths, numbers with separators and abbreviations are masked
with placeholders (`⟦P0⟧`) before any splitting, so "Inc." does not end a sentence and
"$1,980" is not a list. `Masked.unmask` gives the original text back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PLACEHOLDER_RE = re.compile(r"⟦([A-Z])(\d+)⟧")
_ABBREVIATIONS = (
    r"\b(?:Inc|Ltd|Co|Corp|LLC|Mr|Mrs|Ms|Dr|St|vs|No|Jr|Sr|approx|dept|est|etc|Mt|Ave|Blvd)\.|"
    r"\b(?:e\.g|i\.e|a\.m|p\.m|U\.S|U\.K)\.|\b[A-Z]\.(?=\s?[A-Z]\.)"
)
_MASKS: tuple[tuple[str, str], ...] = (
    ("U", r"\bhttps?://\S+[^\s.,;)]"),
    ("E", r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),
    ("Q", r"\"[^\"\n]{1,200}\"|“[^”\n]{1,200}”|‘[^’\n]{1,200}’|(?<![\w'])'[^'\n]{1,120}'(?![\w])"),
    ("P", r"\([^()\n]{0,300}\)"),
    ("F", r"(?<![\w@])(?:[\w.-]+/)+[\w.-]*"),
    # an ISO-8601 time of day ("2026-12-01T08:30:00+02:00") before its "08:30" reads as a number
    ("D", r"\b\d{4}-\d{2}-\d{2}[Tt ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z\b|[+-]\d{2}:?\d{2}\b)?"),
    ("N", r"[$€£]?\d{1,3}(?:,\d{3})+(?:\.\d+)?|[$€£]?\d+\.\d+|\b\d{1,2}:\d{2}\b"),
    ("A", _ABBREVIATIONS),
)


@dataclass
class Masked:
    """A text with its literals replaced by placeholders."""

    text: str
    table: dict[str, str] = field(default_factory=dict)

    def unmask(self, text: str) -> str:
        for _ in range(4):  # placeholders may nest: a quote inside parentheses
            new = PLACEHOLDER_RE.sub(lambda m: self.table.get(m.group(0), m.group(0)), text)
            if new == text:
                break
            text = new
        return text

    def pieces(self, text: str, kind: str) -> list[str]:
        """The original text of every placeholder of `kind` in `text` (nested ones included)."""
        found: list[str] = []
        for match in PLACEHOLDER_RE.finditer(text):
            key = match.group(0)
            if match.group(1) == kind:
                found.append(self.table[key])
            inner = self.table.get(key, "")
            if PLACEHOLDER_RE.search(inner):
                found.extend(self.pieces(inner, kind))
        return found

    def plain(self, text: str) -> str:
        """Text for matching: quotes, parentheses and literals dropped, channels kept as a word."""
        # an address says which channel is meant ("send a receipt to ap@x.example" is an email)
        out = PLACEHOLDER_RE.sub(
            lambda m: (
                " email " if m.group(1) == "E" else " " if m.group(1) in "PQUFN" else self.unmask(m.group(0))
            ),
            text,
        )
        out = re.sub(r"#[\w-]+", " channel ", out)
        return re.sub(r"\s+", " ", out).strip()


def mask(text: str) -> Masked:
    text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    text = re.sub(r"[ \t]+", " ", text).strip()
    masked = Masked(text)
    for kind, pattern in _MASKS:
        regex = re.compile(pattern)

        def repl(match: re.Match[str], kind: str = kind) -> str:
            key = f"⟦{kind}{len(masked.table)}⟧"
            masked.table[key] = match.group(0)
            return key

        masked.text = regex.sub(repl, masked.text)
    return masked


def sentences(text: str) -> list[str]:
    """Sentences of masked text: split after `.`, `!`, `?` and at line breaks."""
    parts = re.split(r"(?<=[.!?])\s+|\n+", text)
    out = []
    for part in parts:
        part = part.strip().rstrip(".!?").strip()
        if part:
            out.append(part)
    return out


def segments(sentence: str) -> list[str]:
    return [s.strip(" ,") for s in re.split(r"\s*;\s*|\s+[—–]\s+|\s+--\s+", sentence) if s.strip(" ,")]


def snake(text: str, limit: int = 5) -> str:
    """`the invite list` → `invite_list`: a name for inputs and step ids."""
    stop = {
        "the",
        "a",
        "an",
        "their",
        "our",
        "its",
        "his",
        "her",
        "my",
        "your",
        "of",
        "to",
        "for",
        "is",
        "are",
        "be",
        "that",
        "this",
        "it",
        "on",
        "in",
    }
    tokens = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in stop]
    return "_".join(tokens[:limit]) or "value"


# a line that opens a list item ("- refund it", "2. email them", "• tell finance")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•·–]|\d{1,2}[.)]|[a-z][.)])\s+")
# words that leave a sentence open at the end of a line ("approve, then", "and the", "email the")
_OPEN_END = re.compile(
    r"(?:[,:(&/+-]|\b(?:and|or|but|then|so|to|the|a|an|of|for|with|in|on|at|by|from|into|if|when|once"
    r"|after|before|until|unless|that|their|our|its|his|her|my|your|this|these|those|is|are|be)\b)$",
    re.IGNORECASE,
)


def normalize_request(text: str, verbs: frozenset[str] | set[str] = frozenset()) -> str:
    """Whitespace of a request as one person means it: a line break inside a sentence ("ask a
    manager to approve, then⏎email them") is a space; a blank line, a list item or a line that
    starts the next instruction (a capital, or one of `verbs` after a line that ends a sentence)
    stays a break. Runs of spaces and tabs are one space."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    out: list[str] = []
    for paragraph in paragraphs:
        lines = [re.sub(r"[ \t\f\v]+", " ", ln).strip() for ln in paragraph.split("\n")]
        lines = [ln for ln in lines if ln]
        joined = lines[0] if lines else ""
        for line in lines[1:]:
            opens_item = bool(_LIST_ITEM.match(line))
            first = re.match(r"[a-z][a-z'-]*", line)
            lower = line[:1].islower() and not (first is not None and first.group(0) in verbs)
            continues = not opens_item and (
                _OPEN_END.search(joined) is not None or lower or not line[:1].isalpha()
            )
            joined += (" " if continues else "\n") + line
        out.append(joined)
    return "\n".join(out).strip()
