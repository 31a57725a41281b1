"""A package's public names loaded on first use (PEP 562), for `runtime` and `runtime.triggers`:
importing one light submodule must not pull in the engine, the journals or SQLAlchemy."""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any


def lazy_exports(
    package: str,
    homes: Mapping[str, Sequence[str]],
    namespace: MutableMapping[str, Any],
    public: Sequence[str],
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The package's `__getattr__` and `__dir__`: `homes` maps each submodule to the names it
    defines; a name is imported from its home when first asked for and kept in `namespace` (the
    package's globals), so later lookups skip `__getattr__`."""
    home_of = {name: module for module, names in homes.items() for name in names}

    def __getattr__(name: str) -> Any:
        home = home_of.get(name)
        if home is None:
            # an AttributeError (not an ImportError) lets `from package import submodule` fall
            # back to importing the submodule
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        # __import__, not importlib.import_module: Python's -X importtime, which the startup tests
        # read to see what a command loaded, lists only imports made through the import statement's path
        value = getattr(__import__(home, fromlist=[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *public})

    return __getattr__, __dir__
