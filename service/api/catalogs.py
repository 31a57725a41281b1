"""`/v1/catalogs`: upload a catalog (YAML/JSON), import an OpenAPI spec, list, show, delete."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Response

from service.api.models import CatalogCreate, CatalogOut, CatalogSummary, OpenAPIImport, iso
from service.api.services import Services, services
from service.openapi_import import fetch_openapi, import_openapi, load_openapi_text
from service.problems import ApiProblem, ProblemItem, to_item
from service.store import CatalogRow
from workflow.errors import Problem
from workflow.loader import catalog_from_data, catalog_problems, parse_text

router = APIRouter(prefix="/v1/catalogs", tags=["catalogs"])


def summary(row: CatalogRow) -> CatalogSummary:
    return CatalogSummary(id=row.id, name=row.name, source=row.source,
                          action_count=len(row.document.get("actions", [])), created_at=iso(row.created_at))


def full(row: CatalogRow, *, warnings: list[ProblemItem] | None = None, secret_name: str | None = None
         ) -> CatalogOut:
    return CatalogOut(**summary(row).model_dump(), actions=list(row.document.get("actions", [])),
                      warnings=warnings or [], secret_name=secret_name)


@router.post("", status_code=201, response_model=CatalogOut, summary="Upload a catalog (YAML or JSON)")
def create_catalog(body: CatalogCreate, response: Response, svc: Services = Depends(services)) -> CatalogOut:
    """Store a catalog given as data (`actions`) or as a file's text (`content`). Every problem of the
    catalog is reported at once, located by field (`actions[2].input`)."""
    data: Any
    if body.content is not None:
        data = parse_text(body.content, source="content.json" if body.format == "json" else "content")
    else:
        data = {"actions": body.actions}
    catalog = catalog_from_data(data, source="upload")  # DocumentError → 422 with every problem
    problems = catalog_problems(data)  # what the catalog would silently drop or skip
    if problems:
        count = len(problems)
        raise ApiProblem(422, f"the catalog has {count} problem{'s' if count != 1 else ''}",
                         kind="invalid-document", title="The document could not be read",
                         problems=[to_item(p) for p in problems])
    row = svc.store.add_catalog(body.name, "upload", catalog.to_data())
    svc.catalogs_changed()
    response.headers["Location"] = f"/v1/catalogs/{row.id}"
    return full(row)


@router.post("/import-openapi", status_code=201, response_model=CatalogOut,
             summary="Import an OpenAPI 3 spec as a catalog")
async def import_catalog(body: OpenAPIImport, response: Response, svc: Services = Depends(services)
                         ) -> CatalogOut:
    """Each operation becomes an action `namespace.operation_id` with input/output schemas (`$ref`s
    resolved) and an HTTP invoker. Operations that cannot be imported are listed in `warnings`."""
    if body.url is not None:
        url = body.url
        # a blocking fetch would stall every other request; run it on a worker thread
        document = await asyncio.to_thread(fetch_openapi, url, timeout_s=svc.settings.fetch_timeout_s)
        source = f"openapi:{url}"
    else:
        url = None
        document = load_openapi_text(body.content or "", source="content")
        source = "openapi:upload"
    result = import_openapi(document, namespace=body.namespace, base_url=body.base_url, source_url=url)
    data = {"actions": [a.model_dump(mode="json", by_alias=True, exclude_none=True) for a in result.actions]}
    catalog = catalog_from_data(data, source=source)
    problems = catalog_problems(data)
    reserved = [p for p in problems if p.code == "reserved_name"]
    if reserved:  # namespace `core`: every action would be dropped as a built-in's redefinition
        raise ApiProblem(422, "the actions would be named `core.*`, which is reserved for the built-ins",
                         kind="invalid-document", title="The document could not be read",
                         problems=[ProblemItem(location="body.namespace", code="reserved_name",
                                               message=f"namespace `{result.namespace}` is reserved",
                                               hint="pass another `namespace`, e.g. `ops`")])
    # a schema JSON Schema cannot read is kept (the API describes it so), but said: it checks nothing
    warnings = [*result.warnings, *(Problem(p.location, f"{p.message}; it will not be checked against",
                                            p.hint, code=p.code, severity="warning") for p in problems)]
    title = body.name or str((document.get("info") or {}).get("title") or result.namespace)
    row = svc.store.add_catalog(title, source, catalog.to_data())
    svc.catalogs_changed()
    response.headers["Location"] = f"/v1/catalogs/{row.id}"
    return full(row, warnings=[to_item(p) for p in warnings], secret_name=result.secret_name)


@router.get("", response_model=list[CatalogSummary], summary="List catalogs")
def list_catalogs(svc: Services = Depends(services)) -> list[CatalogSummary]:
    return [summary(row) for row in svc.store.list_catalogs()]


@router.get("/{catalog_id}", response_model=CatalogOut, summary="Show a catalog with its actions")
def get_catalog(catalog_id: str, svc: Services = Depends(services)) -> CatalogOut:
    return full(svc.catalog_row(catalog_id))


@router.delete("/{catalog_id}", status_code=204, summary="Delete a catalog no workflow uses")
def delete_catalog(catalog_id: str, svc: Services = Depends(services)) -> Response:
    svc.catalog_row(catalog_id)
    users = [w.id for w in svc.store.list_workflows() if w.catalog_id == catalog_id]
    if users:
        raise ApiProblem(409, f"catalog `{catalog_id}` is used by {len(users)} workflow(s): "
                         f"{', '.join(users[:5])}", kind="catalog-in-use")
    svc.store.delete_catalog(catalog_id)
    svc.forget_catalog(catalog_id)
    return Response(status_code=204)
