"""Settings of the service (`overture serve`): every field can be set by an `OVERTURE_` variable.

The data directory holds the service's own SQLite database (catalogs, workflows, tokens, plans)
and the runtime's journal unless URLs say otherwise; PostgreSQL works through the same URLs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Where the service keeps its data and how it behaves; `OVERTURE_<FIELD>` sets each field."""

    model_config = SettingsConfigDict(env_prefix="OVERTURE_", extra="ignore", populate_by_name=True)

    data_dir: Path = Path(".overture")
    """Folder for the SQLite files (created when missing)."""
    database_url: str | None = None
    """SQLAlchemy URL of the service's tables (and the journal, unless `journal_url` is set);
    default: `sqlite:///<data_dir>/overture.db`. `postgresql+psycopg://...` for PostgreSQL."""
    journal_url: str | None = None
    """Where the runtime keeps its journal; default: `database_url` when one is given, else
    `<data_dir>/journal.db`, the file `overture run`/`overture runs` use too."""
    catalogs: list[str] = Field(default_factory=list)
    """Catalog files or folders loaded at start as catalog `default` (`overture serve --catalog`)."""
    metrics_public: bool = False
    """Serve `/metrics` without a token (`OVERTURE_METRICS_PUBLIC=1`), for a Prometheus scraper."""
    concurrency: int = Field(default=64, ge=1, le=10_000)
    """How many steps the engine runs at once."""
    worker_id: str = "api"
    """The engine's worker name in the journal."""
    dispatch: Literal["local", "workers"] = "local"
    """`local`: this process runs the workflows. `workers` (`OVERTURE_DISPATCH=workers`, PostgreSQL
    journal only): the API journals runs and queues them for `overture worker` processes."""
    router: Literal["learned", "default"] = "learned"
    """`learned` (`OVERTURE_ROUTER`): steps with alternatives are routed by the optimizer's trained
    models once there are some in `<data_dir>/models`; `default`: always the step's own action."""
    max_body_bytes: int = Field(default=5_000_000, ge=1_000)
    """Largest request body accepted (catalog and OpenAPI uploads included)."""
    fetch_timeout_s: float = Field(default=15.0, gt=0)
    """Time limit for fetching an OpenAPI document from a URL."""
    sse_keepalive_s: float = Field(default=15.0, gt=0)
    """A comment line is sent on idle event streams this often, so proxies keep them open."""
    sse_poll_s: float = Field(default=2.0, gt=0)
    """How often an event stream looks in the journal for events another process wrote (this
    process's own events wake the streams at once)."""

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'overture.db').resolve()}"

    def resolved_journal_url(self) -> str:
        if self.journal_url:
            return self.journal_url
        if self.database_url:
            return self.database_url
        # its own file: the journal fsyncs every commit, the service's tables need not wait on that
        return f"sqlite:///{(self.data_dir / 'journal.db').resolve()}"

    def ensure_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
