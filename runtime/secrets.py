"""Secrets: where `${{ secrets.NAME }}` values come from, and how they are kept out of everything else.

    RuntimeFault (runtime.errors)
    └── SecretsError           the secrets file is missing, unreadable or not a flat name → value map

A `SecretStore` reads secrets from the environment (`OVERTURE_SECRET_CRM_TOKEN` → `CRM_TOKEN`) and
optionally from a file (YAML, JSON or `.env`; its path may come from `OVERTURE_SECRETS_FILE`).
The environment wins over the file, so an operator can override one value without editing the file.

Redaction replaces every known secret value with `***` in text, nested data and exception messages.
Values shorter than 4 characters are not redacted: replacing every "1" or "ab" in the output would
destroy it while protecting nothing worth protecting. Besides the raw value, the URL-encoded and
JSON-escaped spellings are redacted too, since servers echo requests back in those forms.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

import yaml

from runtime.errors import ActionError, RuntimeFault

DEFAULT_PREFIX = "OVERTURE_SECRET_"
SECRETS_FILE_ENV = "OVERTURE_SECRETS_FILE"
MASK = "***"
MIN_REDACT_LENGTH = 4

T = TypeVar("T")


class SecretsError(RuntimeFault):
    """The secrets file could not be used. Never carries a secret value."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class Redactor:
    """Replaces known secret values (and their common encodings) with `***`."""

    def __init__(self, values: Iterable[str]) -> None:
        variants: set[str] = set()
        for value in values:
            if not isinstance(value, str) or len(value) < MIN_REDACT_LENGTH:
                continue
            variants.add(value)
            variants.add(quote(value, safe=""))
            variants.add(quote_plus(value, safe=""))
            variants.add(json.dumps(value)[1:-1])
        variants = {v for v in variants if len(v) >= MIN_REDACT_LENGTH}
        # longest first, so a secret that contains another one is masked whole
        ordered = sorted(variants, key=lambda v: (-len(v), v))
        self._pattern = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def redact_text(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def redact(self, obj: T) -> T:
        """A deep copy of `obj` with secrets masked in strings, keys, lists and exception messages."""
        result: T = self._redact(obj)
        return result

    def _redact(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.redact_text(obj)
        if isinstance(obj, bytes | bytearray):
            text = bytes(obj).decode("utf-8", errors="replace")
            redacted = self.redact_text(text)
            return obj if redacted == text else redacted.encode()
        if isinstance(obj, Mapping):
            return {self._redact(k): self._redact(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._redact(v) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self._redact(v) for v in obj)
        if isinstance(obj, set | frozenset):
            return type(obj)(self._redact(v) for v in obj)
        if isinstance(obj, BaseException):
            return self._redact_exception(obj)
        return copy.deepcopy(obj)

    def _redact_exception(self, exc: BaseException) -> BaseException:
        if isinstance(exc, ActionError):
            try:
                clean: BaseException = type(exc)(
                    self.redact_text(exc.message), type=exc.type, status=exc.status,
                    retry_after=exc.retry_after, transient=exc.transient,
                )
            except TypeError:  # a subclass with its own constructor: fall back to copying
                clean = copy.copy(exc)
                clean.message = self.redact_text(exc.message)
                clean.args = tuple(self._redact(a) for a in exc.args)
        else:
            clean = copy.copy(exc)
            clean.args = tuple(self._redact(a) for a in exc.args)
        for key, value in vars(exc).items():
            if isinstance(value, str | Mapping | list | tuple):
                setattr(clean, key, self._redact(value))
        # the chained cause may quote the secret too; it is dropped rather than copied
        clean.__cause__ = None
        clean.__context__ = None
        clean.__suppress_context__ = True
        clean.__traceback__ = exc.__traceback__
        return clean


class SecretStore:
    """Secrets by name; implements `runtime.invocation.SecretSource`. Values never appear in repr."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values: dict[str, str] = {}
        for name, value in (values or {}).items():
            if not isinstance(value, str):
                raise SecretsError(f"secret `{name}` must be a string, got {type(value).__name__}")
            self._values[name] = value
        self._redactor = Redactor(self._values.values())

    @classmethod
    def from_env(
        cls,
        prefix: str = DEFAULT_PREFIX,
        file: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> SecretStore:
        """Secrets from `file` (or `$OVERTURE_SECRETS_FILE`), then `<prefix>NAME` variables on top."""
        env = os.environ if environ is None else environ
        values: dict[str, str] = {}
        path = file if file is not None else env.get(SECRETS_FILE_ENV) or None
        if path is not None:
            values.update(load_secrets_file(path))
        for key, value in env.items():
            if key.startswith(prefix) and len(key) > len(prefix):
                values[key[len(prefix):]] = value
        return cls(values)

    def get(self, name: str) -> str | None:
        return self._values.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    @property
    def names(self) -> list[str]:
        return sorted(self._values)

    def values(self) -> list[str]:
        return list(self._values.values())

    def merged(self, other: Mapping[str, str]) -> SecretStore:
        """A new store with `other`'s values added (they win on a name clash)."""
        return SecretStore({**self._values, **other})

    @property
    def redactor(self) -> Redactor:
        return self._redactor

    def redact(self, obj: T) -> T:
        return self._redactor.redact(obj)

    def redact_text(self, text: str) -> str:
        return self._redactor.redact_text(text)

    def __repr__(self) -> str:
        return f"SecretStore(names={self.names!r})"


def load_secrets_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a flat name → value map from YAML (`.yaml`/`.yml`), JSON (`.json`) or `.env` text.

    A YAML/JSON file may also nest the map under a top-level `secrets:` key.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretsError(f"cannot read the secrets file: {exc.strerror or exc}", path=str(file)) from None
    suffix = file.suffix.lower()
    if suffix in {".yaml", ".yml", ".json"}:
        try:
            data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            # the parser's message can quote the offending line, which may hold a value
            kind = suffix[1:].upper()
            raise SecretsError(f"not valid {kind} ({type(exc).__name__})", path=str(file)) from None
        return _flat_map(data, str(file))
    return _parse_dotenv(file)


def _flat_map(data: Any, path: str) -> dict[str, str]:
    if data is None:
        return {}
    if isinstance(data, Mapping) and set(data) == {"secrets"} and isinstance(data["secrets"], Mapping | None):
        data = data["secrets"] or {}
    if not isinstance(data, Mapping):
        raise SecretsError(f"expected a map of NAME: value, got {type(data).__name__}", path=path)
    values: dict[str, str] = {}
    for name, value in data.items():
        if not isinstance(name, str) or not name:
            raise SecretsError(f"secret names must be non-empty strings, got {name!r}", path=path)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise SecretsError(
                f"secret `{name}` must be a string (or number), got {type(value).__name__}", path=path
            )
        values[name] = str(value)
    return values


def _parse_dotenv(file: Path) -> dict[str, str]:
    from dotenv import dotenv_values  # installed with pydantic-settings

    return {k: v for k, v in dotenv_values(file).items() if v is not None}
