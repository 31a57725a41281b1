"""Where a journal lives: the URL for `Journal.open`'s target (a URL, a folder, a file or nothing).

Apart from runtime.journal so that the fire store and commands that only need the URL do not pay
for importing the journal (its SQLAlchemy tables, the engine's types).
"""

from __future__ import annotations

import os
from pathlib import Path


def default_url() -> str:
    """`$OVERTURE_DATABASE_URL`, else SQLite at `$OVERTURE_DATA_DIR/journal.db` (default `./.overture`)."""
    url = os.environ.get("OVERTURE_DATABASE_URL")
    if url:
        return url
    return sqlite_url(Path(os.environ.get("OVERTURE_DATA_DIR", ".overture")) / "journal.db")


def sqlite_url(path: str | Path) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def to_url(target: str | Path | None) -> str:
    if target is None:
        return default_url()
    text = str(target)
    if "://" in text:
        return text
    path = Path(text)
    if path.is_dir() or not path.suffix:
        path = path / "journal.db"
    return sqlite_url(path)
