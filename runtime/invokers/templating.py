"""Rendering an action's `invoke` templates (`${{ with.x }}`, `${{ secrets.NAME }}`, `${{ call.* }}`).

Only the secrets a template actually names are looked up, so a `SecretSource` that can only answer
`get(name)` (a vault client, say) works, and a missing secret is reported by name before anything is
sent. The values looked up are remembered so that errors and outputs of this call can be redacted even
when the source itself cannot list its values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from runtime.errors import PermanentActionError
from runtime.invocation import ActionCall, SecretSource
from runtime.secrets import Redactor, SecretStore
from workflow.errors import ExpressionError
from workflow.expressions import compile_expression, find_expressions, iter_strings, render, render_string


class TemplateRenderer:
    """Renders the templates of one call and knows which secret values it handed out."""

    def __init__(self, call: ActionCall, secrets: SecretSource) -> None:
        self.call = call
        self._source = secrets
        self._used: dict[str, str] = {}

    @property
    def used_secrets(self) -> Mapping[str, str]:
        return self._used

    def redactor(self, extra: Iterable[str] = ()) -> Redactor:
        """Masks the secrets this call used plus every value the source knows, when it can list them."""
        known = self._source.values() if isinstance(self._source, SecretStore) else []
        return Redactor([*known, *self._used.values(), *extra])

    def context(self, templates: Any) -> dict[str, Any]:
        call = self.call
        return {
            "with": dict(call.inputs),
            "secrets": self._secrets_for(templates),
            "call": {
                "run_id": call.run_id,
                "step_id": call.step_id,
                "iteration": call.iteration,
                "attempt": call.attempt,
                "idempotency_key": call.idempotency_key,
                "action": call.action.name,
            },
        }

    def render(self, template: Any, where: str) -> Any:
        """Render nested template data; a broken template is a permanent error naming where it is."""
        context = self.context(template)
        try:
            return render(template, context)
        except ExpressionError as exc:
            raise self._template_error(exc, where) from None

    def render_piece(self, expression_text: str, context: Mapping[str, Any], where: str) -> Any:
        """Render one `${{ ... }}` keeping its type (for callers that splice values themselves)."""
        try:
            return render_string(expression_text, context)
        except ExpressionError as exc:
            raise self._template_error(exc, where) from None

    def _template_error(self, exc: ExpressionError, where: str) -> PermanentActionError:
        message = f"action `{self.call.action.name}`: invoke.{where}: {exc}"
        return PermanentActionError(self.redactor().redact_text(message), type="template")

    def _secrets_for(self, templates: Any) -> dict[str, str]:
        names: set[str] = set()
        for location, text in iter_strings(templates, ""):
            for body in find_expressions(text):
                try:
                    refs = compile_expression(body).references()
                except ExpressionError:
                    continue  # reported with its location when the template is rendered
                for ref in refs:
                    if ref.root != "secrets":
                        continue
                    if not ref.path:
                        raise PermanentActionError(
                            f"action `{self.call.action.name}`: invoke{'.' + location if location else ''} "
                            "reads `secrets` as a whole; name one secret, e.g. `${{ secrets.API_TOKEN }}`",
                            type="template",
                        )
                    names.add(ref.path[0])
        values: dict[str, str] = {}
        missing: list[str] = []
        for name in sorted(names):
            value = self._source.get(name)
            if value is None:
                missing.append(name)
            else:
                values[name] = value
        if missing:
            listed = ", ".join(f"`{n}`" for n in missing)
            raise PermanentActionError(
                f"action `{self.call.action.name}` needs secret(s) {listed}, which are not set; "
                f"set OVERTURE_SECRET_{missing[0]} or add it to the secrets file",
                type="missing_secret",
            )
        self._used.update(values)
        return values


def to_text(value: Any) -> str:
    """How a rendered value is written into text (URLs, headers, query strings)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)
