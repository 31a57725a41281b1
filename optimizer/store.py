"""Versioned model files beside the journal: `<data dir>/models/v<N>.joblib` plus `latest`.

The data dir is `OVERTURE_DATA_DIR` (default `./.overture`), the same place the journal lives.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from optimizer.errors import NoModels
from optimizer.models import ModelSet

_VERSION_RE = re.compile(r"^v(\d+)\.joblib$")


def data_dir() -> Path:
    return Path(os.environ.get("OVERTURE_DATA_DIR", "./.overture"))


class ModelStore:
    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else data_dir() / "models"

    def versions(self) -> list[int]:
        if not self.root.is_dir():
            return []
        found = (_VERSION_RE.match(p.name) for p in self.root.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def next_version(self) -> int:
        versions = self.versions()
        return versions[-1] + 1 if versions else 1

    def save(self, models: ModelSet) -> Path:
        import joblib

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"v{models.version}.joblib"
        tmp = path.with_suffix(".tmp")
        joblib.dump(models, tmp, compress=3)
        # a reader never sees a half-written file
        tmp.replace(path)
        return path

    def load(self, version: int | None = None) -> ModelSet:
        import joblib

        versions = self.versions()
        if not versions:
            raise NoModels(str(self.root))
        chosen = versions[-1] if version is None else version
        if chosen not in versions:
            raise NoModels(str(self.root), version=version)
        models = joblib.load(self.root / f"v{chosen}.joblib")
        if not isinstance(models, ModelSet):
            raise NoModels(str(self.root), version=chosen)
        return models

    def latest(self) -> ModelSet | None:
        try:
            return self.load()
        except NoModels:
            return None
