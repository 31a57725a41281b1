"""API tokens with roles in the service's store: a database made before roles existed gains the
column in place (SQLite and PostgreSQL, two processes opening it at once included) and its tokens
keep working, with no roles; `overture token create --role` stores them, validated, and `token
list` shows them."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from cli_support import cli, error_line
from test_api_postgres import postgres_url  # noqa: F401 - a fixture: a fresh database

from service.auth import authenticate, create_token, hash_token
from service.problems import ApiProblem
from service.store import Base, Store

OLD_TOKENS_TABLE = [
    # overture_svc_tokens as service/store.py created it before tokens had roles
    "CREATE TABLE overture_svc_tokens (id VARCHAR(40) NOT NULL, name VARCHAR(200) NOT NULL, "
    "token_hash VARCHAR(64) NOT NULL, prefix VARCHAR(16) NOT NULL, created_at DOUBLE PRECISION NOT NULL, "
    "last_used_at DOUBLE PRECISION, revoked_at DOUBLE PRECISION, PRIMARY KEY (id))",
    "CREATE UNIQUE INDEX ix_overture_svc_tokens_token_hash ON overture_svc_tokens (token_hash)",
]
OLD_TOKEN = "ovt_" + "o" * 43


def _old_rows() -> list[str]:
    return [
        *OLD_TOKENS_TABLE,
        "INSERT INTO overture_svc_tokens (id, name, token_hash, prefix, created_at) "
        f"VALUES ('tok_old', 'ops', '{hash_token(OLD_TOKEN)}', 'ovt_oooo', 1700000000.0)",
    ]


def _make_old(url: str) -> None:
    """The old tokens table with one token made then, and the service's other tables (unchanged)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in _old_rows():
                conn.execute(sa.text(statement))
        others = [t for t in Base.metadata.sorted_tables if t.name != "overture_svc_tokens"]
        Base.metadata.create_all(engine, tables=others)
    finally:
        engine.dispose()


@pytest.fixture
def old_sqlite(tmp_path: Path) -> Path:
    """A data folder whose database was made before tokens had roles."""
    data = tmp_path / "data"
    data.mkdir()
    _make_old(f"sqlite:///{data / 'overture.db'}")
    return data


@pytest.fixture
def old_postgres(postgres_url: str) -> str:  # noqa: F811 - the imported fixture, requested
    """A fresh PostgreSQL database made before tokens had roles."""
    _make_old(postgres_url)
    return postgres_url


def _columns(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return {c["name"] for c in sa.inspect(engine).get_columns("overture_svc_tokens")}
    finally:
        engine.dispose()


def _old_token_works_and_new_ones_have_roles(url: str) -> None:
    store = Store(url)
    try:
        old = authenticate(store, f"Bearer {OLD_TOKEN}")
        assert (old.token_id, old.name, old.roles) == ("tok_old", "ops", ())
        _, token = create_token(store, "alice", ["manager", "finance-leads", "manager"])
        alice = authenticate(store, f"Bearer {token}")
        assert (alice.name, alice.roles) == ("alice", ("manager", "finance-leads"))  # repeats once
        assert {r.name: r.roles for r in store.list_tokens()} == {
            "ops": None,
            "alice": ["manager", "finance-leads"],
        }
        store.revoke_token("ops")
        with pytest.raises(ApiProblem, match="revoked"):
            authenticate(store, f"Bearer {OLD_TOKEN}")
    finally:
        store.close()


def test_an_old_sqlite_database_gains_the_roles_column_and_its_token_keeps_working(old_sqlite: Path) -> None:
    url = f"sqlite:///{old_sqlite / 'overture.db'}"
    assert "roles" not in _columns(url)
    _old_token_works_and_new_ones_have_roles(url)
    assert "roles" in _columns(url)
    Store(url).close()  # opening it again finds the column there


def test_an_old_postgresql_database_gains_the_column_even_when_two_open_it_at_once(old_postgres: str) -> None:
    assert "roles" not in _columns(old_postgres)
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def open_store() -> None:
        try:
            start.wait()
            Store(old_postgres).close()
        except BaseException as exc:  # reported below: a lost race must not fail the opening
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert "roles" in _columns(old_postgres)
    _old_token_works_and_new_ones_have_roles(old_postgres)


def test_token_create_with_roles_and_token_list_shows_them(old_sqlite: Path) -> None:
    data = str(old_sqlite)
    code, out, err = cli(
        "token", "create", "--name", "alice", "--role", "manager", "-r", "finance-leads", "--data-dir", data
    )
    assert code == 0, err
    assert out.startswith("ovt_") and "(alice with roles manager, finance-leads)" in err
    code, out, err = cli("token", "list", "--data-dir", data)
    assert code == 0, err
    [old, alice] = out.splitlines()
    assert "tok_old" in old and "ops" in old and "no roles" in old
    assert "alice" in alice and "roles manager,finance-leads" in alice
    code, out, _ = cli("token", "list", "--format", "json", "--data-dir", data)
    assert [(t["name"], t["roles"]) for t in json.loads(out)] == [
        ("ops", []),
        ("alice", ["manager", "finance-leads"]),
    ]
    code, out, _ = cli("token", "create", "--help")
    assert code == 0 and "--role" in out


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("", "error: a --role is empty; give a role, e.g. --role manager"),
        ("  ", "error: a --role is empty; give a role, e.g. --role manager"),
        (" manager", "error: --role ` manager` has spaces around it; give it trimmed, e.g. --role manager"),
        (
            "manager,vp-sales",
            "error: --role `manager,vp-sales` holds a comma; give each role its own --role, "
            "e.g. --role manager",
        ),
        (
            "vp\tsales",
            "error: a --role holds a control character (a line break, a tab); give one line, "
            "e.g. --role manager",
        ),
    ],
)
def test_a_bad_role_is_one_error_line_and_no_token_is_made(tmp_path: Path, role: str, expected: str) -> None:
    data = str(tmp_path / "data")
    code, out, err = cli(
        "token", "create", "--name", "alice", "--role", "ok", "--role", role, "--data-dir", data
    )
    assert (code, out) == (2, "")
    assert error_line(err) == expected and len(err.strip().splitlines()) == 1
    code, out, _ = cli("token", "list", "--format", "json", "--data-dir", data)
    assert code == 0 and json.loads(out) == []
