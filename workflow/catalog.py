"""The action catalog: what a deployment can call, and how.

Each action has JSON Schemas for its input (`with`) and output, an optional compensation (the
action that undoes it) and an `invoke` block telling the runtime how to call it:

```yaml
invoke: {kind: http, method: POST, url: "http://crm.local/accounts/${{ with.account_id }}",
         headers: {Authorization: "Bearer ${{ secrets.CRM_TOKEN }}"}}
invoke: {kind: python, callable: "mypkg.actions:charge_card"}
invoke: {kind: smtp, host: 127.0.0.1, port: 2525, sender: "ops@example.com"}
```

An action without `invoke` can be planned and validated but not run. The `core.*` built-ins are in
every catalog.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ACTION_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class HttpInvoke(_Model):
    """Call an HTTP endpoint; the JSON response is the action's output."""

    kind: Literal["http"] = "http"
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str
    """URL template; may read `${{ with.X }}` and `${{ secrets.NAME }}`."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Header templates, e.g. `Authorization: Bearer ${{ secrets.CRM_TOKEN }}`."""
    query: dict[str, str] = Field(default_factory=dict)
    """Query parameter templates."""
    body: Literal["json", "none"] | dict[str, Any] = "json"
    """`json`: the step's `with` as a JSON body; `none`: no body; an object: a body template."""
    output: str | None = None
    """Dotted path into the JSON response to use as output (default: the whole response)."""
    timeout_s: Annotated[float, Field(gt=0)] = 30.0


class PythonInvoke(_Model):
    """Call a Python function `module.path:function` (sync or async) with the step's `with`."""

    kind: Literal["python"] = "python"
    callable: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    """Import path, `package.module:function`."""


class SmtpInvoke(_Model):
    """Send an email over SMTP. `with` takes to, subject, body (and optional cc, from)."""

    kind: Literal["smtp"] = "smtp"
    host: str = "127.0.0.1"
    port: int = 25
    sender: str
    """Default From address."""
    username: str | None = None
    """Template, usually `${{ secrets.SMTP_USER }}`."""
    password: str | None = None
    """Template, usually `${{ secrets.SMTP_PASSWORD }}`; never a literal secret."""
    starttls: bool = False
    timeout_s: Annotated[float, Field(gt=0)] = 30.0


class CoreInvoke(_Model):
    """Handled by the runtime itself (the `core.*` built-ins)."""

    kind: Literal["core"] = "core"


Invoke = Annotated[HttpInvoke | PythonInvoke | SmtpInvoke | CoreInvoke, Field(discriminator="kind")]


class ActionSpec(_Model):
    """One action of the catalog."""

    name: str = Field(pattern=ACTION_NAME_PATTERN)
    """Unique; `namespace.verb_object` by convention."""
    description: str = ""
    """What the action does, in one sentence; the planner matches requests against it."""
    input: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    """JSON Schema of the step's `with`."""
    output: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    """JSON Schema of what the action returns."""
    compensation: str | None = None
    """The action that undoes this one."""
    compensation_with: dict[str, Any] | None = None
    """How to fill the compensation's inputs; by default fields are wired by name."""
    invoke: Invoke | None = None
    """How the runtime calls it; absent for plan-only catalogs."""
    capability: str | None = None
    """Actions sharing a capability are alternatives of each other (the optimizer may reroute)."""
    side_effects: bool = True
    """False for read-only checks; the optimizer may move these earlier (fail fast)."""
    cost: Annotated[float, Field(ge=0)] | None = None
    """Relative cost of one call, for the optimizer's fail-fast ordering."""
    order_sensitive: bool = False
    """True when this action must keep its position relative to the steps it is ordered after."""
    tags: list[str] = Field(default_factory=list)

    @property
    def input_properties(self) -> dict[str, Any]:
        props = self.input.get("properties")
        return props if isinstance(props, dict) else {}

    @property
    def required_inputs(self) -> list[str]:
        req = self.input.get("required")
        return [r for r in req if isinstance(r, str)] if isinstance(req, list) else []

    @property
    def output_properties(self) -> dict[str, Any]:
        props = self.output.get("properties")
        return props if isinstance(props, dict) else {}

    @property
    def is_core(self) -> bool:
        return self.name.startswith("core.")


class CatalogFile(_Model):
    """The on-disk shape: `actions: [...]`."""

    actions: list[ActionSpec] = Field(default_factory=list)


def _core(name: str, description: str, inp: dict[str, Any], out: dict[str, Any]) -> ActionSpec:
    return ActionSpec(
        name=name, description=description, input=inp, output=out,
        invoke=CoreInvoke(), side_effects=False, cost=0.0,
    )


CORE_ACTIONS: tuple[ActionSpec, ...] = (
    _core(
        "core.wait",
        "Wait for a delay (seconds) or until a point in time before continuing.",
        {
            "type": "object",
            "properties": {
                "seconds": {"type": "number", "minimum": 0, "description": "How long to wait."},
                "until": {"type": "string", "format": "date-time", "description": "ISO-8601 time."},
            },
        },
        {"type": "object", "properties": {"waited_s": {"type": "number"}, "until": {"type": "string"}}},
    ),
    _core(
        "core.approval",
        "Pause until a person approves or rejects; a rejection fails the step.",
        {
            "type": "object",
            "properties": {
                "prompt": {"type": "string", "description": "What the approver is asked."},
                "approvers": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["prompt"],
        },
        {
            "type": "object",
            "properties": {
                "approved": {"type": "boolean"},
                "by": {"type": "string"},
                "comment": {"type": "string"},
            },
            "required": ["approved"],
        },
    ),
    _core(
        "core.log",
        "Record a message in the run's history.",
        {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
        {"type": "object", "properties": {"message": {"type": "string"}}},
    ),
    _core(
        "core.fail",
        "End the run as failed with a message.",
        {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
        {"type": "object"},
    ),
)


class Catalog:
    """The actions a deployment can call, the `core.*` built-ins included. Immutable after build."""

    def __init__(self, actions: Iterable[ActionSpec] = (), *, sources: Iterable[str] = ()) -> None:
        self._actions: dict[str, ActionSpec] = {a.name: a for a in CORE_ACTIONS}
        self.sources: list[str] = list(sources)
        for action in actions:
            if action.is_core:
                # the built-ins are defined by the spec; a catalog may not redefine them
                continue
            self._actions[action.name] = action

    def __contains__(self, name: object) -> bool:
        return name in self._actions

    def __getitem__(self, name: str) -> ActionSpec:
        return self._actions[name]

    def __iter__(self) -> Iterator[ActionSpec]:
        return iter(self._actions.values())

    def __len__(self) -> int:
        return len(self._actions)

    def get(self, name: str) -> ActionSpec | None:
        return self._actions.get(name)

    @property
    def names(self) -> list[str]:
        return list(self._actions)

    def user_actions(self) -> list[ActionSpec]:
        return [a for a in self._actions.values() if not a.is_core]

    def compensation_of(self, name: str) -> ActionSpec | None:
        action = self._actions.get(name)
        if action is None or not action.compensation:
            return None
        return self._actions.get(action.compensation)

    def alternatives_of(self, name: str) -> list[ActionSpec]:
        action = self._actions.get(name)
        if action is None or not action.capability:
            return []
        return [a for a in self._actions.values() if a.capability == action.capability and a.name != name]

    def merged(self, other: Catalog) -> Catalog:
        return Catalog([*self.user_actions(), *other.user_actions()], sources=[*self.sources, *other.sources])

    def to_data(self) -> dict[str, Any]:
        actions = []
        for a in self.user_actions():
            data = a.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)
            if a.invoke is not None:
                # `kind` is the invoke block's discriminator: dropped as a default, the data
                # would no longer load
                data["invoke"] = {"kind": a.invoke.kind, **data.get("invoke", {})}
            actions.append(data)
        return {"actions": actions}
