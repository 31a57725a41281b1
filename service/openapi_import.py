"""Import an OpenAPI 3 document as catalog actions: one action per operation, with an HTTP invoker.

For each operation (GET, POST, PUT, PATCH, DELETE):

- name: `namespace.snake_case(operationId)` (or method + path when there is no operationId);
- input: the path and query parameters plus the JSON request body's properties, `$ref`s inlined;
- output: the JSON schema of the 200/201 (else first 2xx) response; a non-object response is
  wrapped as `{result: ...}`, since that is how the HTTP invoker returns it;
- invoke: `{kind: http, method, url: server + path with ${{ with.param }}, query: {...}, body}`.

The body is the step's whole `with` (`body: json`) when the operation has no parameters; when it
has, the body is a template of the body's own properties only, so path and query values are not
echoed into the body (an optional property that is not given is sent as its schema's `default`,
else as null).

Parameter names that are not identifiers (`customer-id`, `page[size]`) become snake_case input
names, since expressions read `with.<name>`. OpenAPI 3.0's `nullable` becomes a JSON Schema type
list; `readOnly` properties leave request bodies and `writeOnly` ones leave responses. An
operation that cannot be imported (a non-JSON body, say) is skipped with a warning, never silently.
When the document declares HTTP bearer or API-key security, a header reading
`${{ secrets.<NAMESPACE>_TOKEN }}` is added, so the secret stays out of the catalog.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpx

from workflow.catalog import ActionSpec, HttpInvoke
from workflow.errors import DocumentError, Problem
from workflow.loader import parse_text

METHODS = ("get", "post", "put", "patch", "delete")
_OPENAPI_ONLY = ("discriminator", "xml", "externalDocs", "nullable", "example")
MAX_DOCUMENT_BYTES = 10_000_000


@dataclass
class ImportResult:
    """The actions made from one OpenAPI document, and what could not be imported."""

    actions: list[ActionSpec]
    namespace: str
    base_url: str
    warnings: list[Problem] = field(default_factory=list)
    secret_name: str | None = None
    """The secret the actions' auth header reads, when the API declares bearer/API-key security."""


def snake_case(text: str) -> str:
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    if not text:
        return "x"
    return f"_{text}" if text[0].isdigit() else text


class _Resolver:
    """Inlines local `$ref`s (`#/components/...`); a recursive schema is cut at its second visit."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def lookup(self, ref: str, where: str) -> Any:
        if not ref.startswith("#/"):
            raise DocumentError("only local $refs (`#/components/...`) can be imported",
                                problems=[Problem(where, f"external $ref `{ref}` is not supported",
                                                  "bundle the spec into one file first", "external_ref")])
        node: Any = self.document
        for raw in ref[2:].split("/"):
            part = raw.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                raise DocumentError("a $ref points at nothing",
                                    problems=[Problem(where, f"`{ref}` does not resolve", None, "bad_ref")])
            node = node[part]
        return node

    def deref(self, node: Any, where: str) -> Any:
        """One level: follow `$ref` chains at the top of `node`."""
        seen: set[str] = set()
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in seen:
                raise DocumentError("a $ref refers to itself",
                                    problems=[Problem(where, f"`{ref}` is circular", None, "circular_ref")])
            seen.add(ref)
            node = self.lookup(ref, where)
        return node

    def schema(self, node: Any, where: str, *, drop: str | None = None, stack: tuple[str, ...] = ()) -> Any:
        """A JSON Schema with every `$ref` inlined and OpenAPI 3.0 quirks turned into JSON Schema."""
        if isinstance(node, list):
            return [self.schema(item, f"{where}[{i}]", drop=drop, stack=stack) for i, item in enumerate(node)]
        if not isinstance(node, dict):
            return node
        if isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in stack:
                name = ref.rsplit("/", 1)[-1]
                return {"type": "object", "description": f"(recursive `{name}`, not expanded)"}
            target = self.lookup(ref, where)
            return self.schema(target, where, drop=drop, stack=(*stack, ref))
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _OPENAPI_ONLY:
                continue
            if key == "properties" and isinstance(value, dict):
                props = {}
                for name, sub in value.items():
                    resolved = self.schema(sub, f"{where}.properties.{name}", drop=drop, stack=stack)
                    if drop and isinstance(resolved, dict) and resolved.get(drop) is True:
                        continue
                    props[name] = resolved
                out[key] = props
            elif isinstance(value, dict | list) and key not in ("enum", "const", "default", "examples",
                                                                  "required"):
                out[key] = self.schema(value, f"{where}.{key}", drop=drop, stack=stack)
            else:
                out[key] = copy.deepcopy(value)
        if "example" in node and "examples" not in out:
            out["examples"] = [copy.deepcopy(node["example"])]
        if node.get("nullable") is True and isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            # OpenAPI 3.0's boolean form; in JSON Schema 2020-12 the bound itself is exclusive
            if isinstance(out.get(exclusive), bool):
                if out.pop(exclusive) and isinstance(out.get(bound), int | float):
                    out[exclusive] = out.pop(bound)
        if drop and isinstance(out.get("required"), list) and isinstance(out.get("properties"), dict):
            out["required"] = [r for r in out["required"] if r in out["properties"]]
            if not out["required"]:
                del out["required"]
        return out


def _server_url(document: dict[str, Any], source_url: str | None, override: str | None) -> str:
    if override:
        return override.rstrip("/")
    servers = document.get("servers") or []
    url = "/"
    if servers and isinstance(servers[0], dict) and isinstance(servers[0].get("url"), str):
        url = servers[0]["url"]
        for name, var in (servers[0].get("variables") or {}).items():
            if isinstance(var, dict) and "default" in var:
                url = url.replace("{" + name + "}", str(var["default"]))
    if not re.match(r"^https?://", url):
        if source_url is None:
            raise DocumentError(
                "the spec's server URL is relative (or missing), so the API's address is unknown",
                problems=[Problem("servers[0].url", f"`{url}` is not an absolute http(s) URL",
                                  "pass base_url (the API's address) with the import", "relative_server")],
            )
        url = urljoin(source_url, url)
    return url.rstrip("/")


def _security_header(document: dict[str, Any], secret: str) -> tuple[str, str] | None:
    schemes = (document.get("components") or {}).get("securitySchemes") or {}
    for scheme in schemes.values():
        if not isinstance(scheme, dict):
            continue
        if scheme.get("type") == "http" and str(scheme.get("scheme", "")).lower() == "bearer":
            return "Authorization", f"Bearer ${{{{ secrets.{secret} }}}}"
        if scheme.get("type") == "apiKey" and scheme.get("in") == "header" and scheme.get("name"):
            return str(scheme["name"]), f"${{{{ secrets.{secret} }}}}"
    return None


def _operation_security(document: dict[str, Any], operation: dict[str, Any]) -> bool:
    security = operation.get("security", document.get("security"))
    return bool(security)  # absent or [] means no auth for this operation


def _json_content(node: dict[str, Any]) -> dict[str, Any] | None:
    content = node.get("content") or {}
    for media, body in content.items():
        if (media == "application/json" or media.endswith("+json")) and isinstance(body, dict):
            return body
    return None


def import_openapi(
    document: Any,
    *,
    namespace: str | None = None,
    base_url: str | None = None,
    source_url: str | None = None,
) -> ImportResult:
    """Actions for every operation of an OpenAPI 3 document (already parsed)."""
    if not isinstance(document, dict):
        raise DocumentError(f"expected an OpenAPI document (a mapping), found {type(document).__name__}")
    version = str(document.get("openapi", ""))
    if not version.startswith("3."):
        found = f"swagger {document['swagger']}" if "swagger" in document else (
            version or "no `openapi` field")
        raise DocumentError("only OpenAPI 3.x documents can be imported", problems=[
            Problem("openapi", f"expected `openapi: 3.x`, found {found}",
                    "convert Swagger 2.0 specs to OpenAPI 3 first", "unsupported_version")])
    info = document.get("info") or {}
    ns = snake_case(namespace or str(info.get("title") or "api"))
    server = _server_url(document, source_url, base_url)
    resolver = _Resolver(document)
    secret = f"{ns.upper()}_TOKEN"
    auth = _security_header(document, secret)
    paths = document.get("paths")
    if not isinstance(paths, dict) or not paths:
        raise DocumentError("the OpenAPI document has no operations",
                            problems=[Problem("paths", "`paths` is missing or empty", None, "no_paths")])
    actions: list[ActionSpec] = []
    warnings: list[Problem] = []
    names: set[str] = set()
    used_auth = False
    for path, item in paths.items():
        item = resolver.deref(item, f"paths.{path}")
        if not isinstance(item, dict):
            continue
        shared_params = item.get("parameters") or []
        for method in METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            where = f"paths.{path}.{method}"
            try:
                action, with_auth = _action(
                    resolver, ns, server, path, method, operation, shared_params, where,
                    auth if _operation_security(document, operation) else None,
                )
            except _Skip as skip:
                warnings.append(Problem(where, f"operation skipped: {skip}", None, "skipped",
                                        severity="warning"))
                continue
            if action.name in names:
                warnings.append(Problem(where, f"operation skipped: the name `{action.name}` is taken",
                                        "give the operations distinct operationIds", "duplicate_name",
                                        severity="warning"))
                continue
            names.add(action.name)
            used_auth = used_auth or with_auth
            actions.append(action)
    if not actions:
        raise DocumentError("no operation of the OpenAPI document could be imported", problems=warnings)
    return ImportResult(actions, ns, server, warnings, secret if used_auth else None)


class _Skip(Exception):
    pass


def _action(
    resolver: _Resolver,
    ns: str,
    server: str,
    path: str,
    method: str,
    operation: dict[str, Any],
    shared_params: list[Any],
    where: str,
    auth: tuple[str, str] | None,
) -> tuple[ActionSpec, bool]:
    op_id = operation.get("operationId")
    base = snake_case(op_id) if isinstance(op_id, str) and op_id else snake_case(f"{method} {path}")
    name = f"{ns}.{base}"
    params: dict[tuple[str, str], dict[str, Any]] = {}
    for index, raw in enumerate([*shared_params, *(operation.get("parameters") or [])]):
        param = resolver.deref(raw, f"{where}.parameters[{index}]")
        if isinstance(param, dict) and "name" in param and "in" in param:
            params[(str(param["in"]), str(param["name"]))] = param  # the operation's own wins
    properties: dict[str, Any] = {}
    required: list[str] = []
    url = server + path
    query: dict[str, str] = {}
    for (location, pname), param in params.items():
        if location not in ("path", "query"):
            continue  # headers and cookies are the catalog's business (auth), not a step's input
        key = snake_case(pname)
        schema = resolver.schema(param.get("schema") or {}, f"{where}.parameters.{pname}")
        if param.get("description") and isinstance(schema, dict) and "description" not in schema:
            schema = {**schema, "description": param["description"]}
        properties[key] = schema
        is_required = location == "path" or bool(param.get("required"))
        if is_required:
            required.append(key)
        if location == "path":
            url = url.replace("{" + pname + "}", f"${{{{ with.{key} }}}}")
        else:
            # an optional query parameter that is not given renders as None, which the invoker omits
            query[pname] = (f"${{{{ with.{key} }}}}" if is_required
                            else f"${{{{ with.{key} | default(null) }}}}")
    if re.search(r"\{[^}]+\}", url.replace("${{", "").replace("}}", "")):
        raise _Skip(f"the path `{path}` has a placeholder with no path parameter")

    body: str | dict[str, Any] = "none"
    request_body = operation.get("requestBody")
    if request_body is not None:
        request_body = resolver.deref(request_body, f"{where}.requestBody")
        media = _json_content(request_body) if isinstance(request_body, dict) else None
        if media is None:
            raise _Skip("its request body is not JSON")
        schema = merge_all_of(resolver.schema(media.get("schema") or {}, f"{where}.requestBody",
                                              drop="readOnly"))
        body_props = schema.get("properties") if isinstance(schema, dict) else None
        if not isinstance(body_props, dict):
            raise _Skip("its request body is not a JSON object with properties")
        clash = sorted(set(body_props) & set(properties))
        if clash:
            raise _Skip(f"body properties {clash} clash with parameters of the same name")
        body_required = [r for r in schema.get("required", []) if r in body_props]
        if properties:
            # the operation has parameters: send only the body's own properties, not the whole `with`
            if any(not re.match(r"^[A-Za-z_]\w*$", p) for p in body_props):
                raise _Skip("its body property names are not identifiers")
            body = {prop: _body_template(prop, spec, prop in body_required)
                    for prop, spec in body_props.items()}
        else:
            body = "json"
        properties.update(body_props)
        required.extend(body_required)

    output = _output_schema(resolver, operation, where)
    input_schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        input_schema["required"] = list(dict.fromkeys(required))
    headers = {auth[0]: auth[1]} if auth else {}
    invoke = HttpInvoke(method=method.upper(), url=url, query=query, headers=headers,
                        body=body)
    description = str(operation.get("summary") or operation.get("description") or f"{method.upper()} {path}")
    tags = [str(t) for t in operation.get("tags") or []]
    return ActionSpec(
        name=name, description=" ".join(description.split()), input=input_schema, output=output,
        invoke=invoke, side_effects=method != "get", tags=tags,
    ), auth is not None


def _body_template(prop: str, schema: Any, required: bool) -> str:
    if required:
        return f"${{{{ with.{prop} }}}}"
    # an optional property that is not given gets the schema's default, else null
    fallback = "null"
    if isinstance(schema, dict) and "default" in schema:
        fallback = json.dumps(schema["default"])
    return f"${{{{ with.{prop} | default({fallback}) }}}}"


def _output_schema(resolver: _Resolver, operation: dict[str, Any], where: str) -> dict[str, Any]:
    responses = operation.get("responses") or {}
    codes = [c for c in ("200", "201") if c in responses] or sorted(
        str(c) for c in responses if str(c).startswith("2"))
    for code in codes:
        response = resolver.deref(responses.get(code) if code in responses else responses.get(int(code)),
                                  f"{where}.responses.{code}")
        media = _json_content(response) if isinstance(response, dict) else None
        if media is None or "schema" not in media:
            continue
        schema = merge_all_of(resolver.schema(media["schema"], f"{where}.responses.{code}", drop="writeOnly"))
        if not isinstance(schema, dict):
            break
        kind = schema.get("type")
        if kind is None or kind == "object" or (isinstance(kind, list) and "object" in kind):
            return schema
        return {"type": "object", "properties": {"result": schema}}  # the invoker wraps non-objects
    return {"type": "object"}


def merge_all_of(schema: Any) -> Any:
    """An `allOf` of object schemas as one object schema (properties merged, `required` joined), so
    the validator and planner see the fields; anything else is returned unchanged."""
    if not isinstance(schema, dict) or not isinstance(schema.get("allOf"), list):
        return schema
    parts = [merge_all_of(p) for p in schema["allOf"]]
    if not all(isinstance(p, dict) and (p.get("type") in (None, "object")) and "allOf" not in p
               and not ({"oneOf", "anyOf"} & set(p)) for p in parts):
        return schema
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    merged["type"] = "object"
    properties: dict[str, Any] = dict(merged.get("properties") or {})
    required: list[str] = list(merged.get("required") or [])
    for part in parts:
        properties.update(part.get("properties") or {})
        required.extend(r for r in part.get("required") or [] if r not in required)
        for key, value in part.items():
            if key not in ("properties", "required", "type"):
                merged.setdefault(key, value)
    merged["properties"] = properties
    if required:
        merged["required"] = required
    return merged


def load_openapi_text(text: str, *, source: str = "<openapi>") -> Any:
    return parse_text(text, source=source)


def fetch_openapi(url: str, *, timeout_s: float = 15.0) -> Any:
    """Download and parse an OpenAPI document (JSON or YAML) from an http(s) URL."""
    if not re.match(r"^https?://", url):
        raise DocumentError("the OpenAPI URL must be http(s)", path=url)
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=True) as client, \
                client.stream("GET", url) as resp:
            if resp.status_code >= 400:
                raise DocumentError(
                    f"fetching the OpenAPI document failed with HTTP {resp.status_code}", path=url)
            chunks: list[bytes] = []
            size = 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > MAX_DOCUMENT_BYTES:
                    raise DocumentError(
                        f"the OpenAPI document is larger than {MAX_DOCUMENT_BYTES} bytes", path=url)
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise DocumentError(f"could not fetch the OpenAPI document: {type(exc).__name__}: {exc}",
                            path=url) from None
    text = b"".join(chunks).decode("utf-8", errors="replace")
    return parse_text(text, source=url.split("?", 1)[0])
