"""SecretStore: loading from the environment and files, and redaction of known values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.errors import PermanentActionError, TransientActionError
from runtime.invocation import SecretSource
from runtime.secrets import SecretsError, SecretStore


def test_direct_construction_and_protocol() -> None:
    store = SecretStore({"CRM_TOKEN": "tok-abc-123"})
    assert isinstance(store, SecretSource)
    assert store.get("CRM_TOKEN") == "tok-abc-123"
    assert store.get("MISSING") is None
    assert "CRM_TOKEN" in store and len(store) == 1
    assert "tok-abc-123" not in repr(store) and "CRM_TOKEN" in repr(store)


def test_from_env_strips_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERTURE_SECRET_CRM_TOKEN", "crm-secret-value")
    monkeypatch.setenv("OVERTURE_SECRET_", "ignored: no name")
    monkeypatch.setenv("UNRELATED", "nope")
    monkeypatch.delenv("OVERTURE_SECRETS_FILE", raising=False)
    store = SecretStore.from_env()
    assert store.get("CRM_TOKEN") == "crm-secret-value"
    assert store.get("UNRELATED") is None
    assert "" not in store


def test_from_env_custom_prefix_and_explicit_environ() -> None:
    store = SecretStore.from_env(prefix="APP_", environ={"APP_DB": "pg-password", "OTHER_X": "y"})
    assert store.names == ["DB"]


@pytest.mark.parametrize(
    ("filename", "text"),
    [
        ("secrets.yaml", "CRM_TOKEN: from-yaml-1\nPORT: 8080\n"),
        ("secrets.yml", "secrets:\n  CRM_TOKEN: from-yaml-1\n  PORT: 8080\n"),
        ("secrets.json", json.dumps({"CRM_TOKEN": "from-yaml-1", "PORT": 8080})),
        (".env", "# comment\nCRM_TOKEN=from-yaml-1\nexport PORT='8080'\n"),
    ],
)
def test_from_file_formats(tmp_path: Path, filename: str, text: str) -> None:
    path = tmp_path / filename
    path.write_text(text)
    store = SecretStore.from_env(file=path, environ={})
    assert store.get("CRM_TOKEN") == "from-yaml-1"
    assert store.get("PORT") == "8080"


def test_file_path_from_environment_and_env_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("A_TOKEN: from-file\nB_TOKEN: only-in-file\n")
    store = SecretStore.from_env(
        environ={"OVERTURE_SECRETS_FILE": str(path), "OVERTURE_SECRET_A_TOKEN": "from-env"}
    )
    assert store.get("A_TOKEN") == "from-env"
    assert store.get("B_TOKEN") == "only-in-file"


def test_bad_files_raise_without_quoting_values(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SecretsError) as info:
        SecretStore.from_env(file=missing, environ={})
    assert info.value.path == str(missing)

    broken = tmp_path / "broken.yaml"
    broken.write_text("TOKEN: [super-secret-value\n")
    with pytest.raises(SecretsError) as info:
        SecretStore.from_env(file=broken, environ={})
    assert "super-secret-value" not in str(info.value)

    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"TOKEN": {"inner": "super-secret-value"}}))
    with pytest.raises(SecretsError, match="TOKEN") as info:
        SecretStore.from_env(file=nested, environ={})
    assert "super-secret-value" not in str(info.value)


def test_redact_nested_data_is_a_deep_copy() -> None:
    store = SecretStore({"TOKEN": "s3cr3t-token", "PW": "hunter22", "PIN": "123"})
    data = {
        "header": "Bearer s3cr3t-token",
        "list": ["hunter22", {"deep": ("x", "pw=hunter22;")}],
        "s3cr3t-token": 1,
        "n": 5,
        "pin": "123",  # shorter than 4 characters: left alone
    }
    clean = store.redact(data)
    assert clean == {
        "header": "Bearer ***",
        "list": ["***", {"deep": ("x", "pw=***;")}],
        "***": 1,
        "n": 5,
        "pin": "123",
    }
    assert data["header"] == "Bearer s3cr3t-token"  # the original is untouched
    assert store.redact_text("a s3cr3t-token b hunter22") == "a *** b ***"


def test_redact_encoded_spellings_and_overlapping_secrets() -> None:
    store = SecretStore({"A": "p@ss word/1", "B": "p@ss"})
    assert store.redact_text("q=p%40ss%20word%2F1") == "q=***"
    assert store.redact_text("q=p%40ss+word%2F1") == "q=***"
    # the longer secret is masked whole, not as "***" + " word/1"
    assert store.redact_text("x p@ss word/1 y") == "x *** y"
    quoted = SecretStore({"Q": 'ab"cd\\ef'})
    assert quoted.redact_text(json.dumps({"echo": 'ab"cd\\ef'})) == '{"echo": "***"}'


def test_redact_exceptions_keeps_class_and_data() -> None:
    store = SecretStore({"TOKEN": "s3cr3t-token"})
    error = TransientActionError("server echoed s3cr3t-token", type="http_503", status=503, retry_after=2.0)
    clean = store.redact(error)
    assert isinstance(clean, TransientActionError)
    assert (clean.message, clean.type, clean.status, clean.retry_after) == (
        "server echoed ***", "http_503", 503, 2.0
    )
    assert str(clean) == "server echoed ***"
    assert "s3cr3t-token" in str(error)  # not modified in place

    plain = store.redact(ValueError("bad token s3cr3t-token", 3))
    assert isinstance(plain, ValueError) and plain.args == ("bad token ***", 3)

    nested = store.redact({"errors": [PermanentActionError("s3cr3t-token rejected", type="http_401")]})
    assert str(nested["errors"][0]) == "*** rejected"


def test_empty_store_redacts_nothing() -> None:
    store = SecretStore()
    assert store.redact({"a": ["b"]}) == {"a": ["b"]}
    assert store.redact_text("anything") == "anything"


def test_non_string_values_are_refused() -> None:
    with pytest.raises(SecretsError, match="X"):
        SecretStore({"X": 123})  # type: ignore[dict-item]
