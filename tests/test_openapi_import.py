"""OpenAPI import on a realistic spec (tests/data/billing-openapi.yaml: $refs, path and query params,
allOf, nullable, readOnly/writeOnly, a non-JSON operation), from a file and from a URL served by a
real HTTP server on 127.0.0.1; then an imported workflow runs against a real server implementing it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from api_support import api_client
from invoker_support import HttpTestServer, RecordedRequest, Reply

from runtime.secrets import SecretStore
from service.openapi_import import import_openapi, snake_case
from workflow.errors import DocumentError
from workflow.loader import catalog_from_data, read_data
from workflow.validator import validate

SPEC_PATH = Path(__file__).parent / "data" / "billing-openapi.yaml"
SECRET = "bill_sk_test_4f9a8b7c6d5e"


def spec() -> dict[str, Any]:
    data = read_data(SPEC_PATH)
    assert isinstance(data, dict)
    return data


def test_every_json_operation_becomes_an_action_with_refs_resolved() -> None:
    result = import_openapi(spec(), base_url="http://billing.test/v1")
    names = [a.name for a in result.actions]
    assert names == [f"acme_billing.{n}" for n in ("create_customer", "get_customer", "list_invoices",
                                                    "create_invoice", "void_invoice", "pay_invoice")]
    assert "$ref" not in json.dumps([a.model_dump(mode="json") for a in result.actions])
    [skipped] = result.warnings
    assert skipped.location == "paths./reports/export.post" and "not JSON" in skipped.message
    assert result.secret_name == "ACME_BILLING_TOKEN"

    actions = {a.name.split(".")[1]: a for a in result.actions}
    create = actions["create_customer"]
    assert create.required_inputs == ["email", "name"]
    assert create.input_properties["phone"]["type"] == ["string", "null"]  # nullable → JSON Schema
    assert create.input_properties["address"]["properties"]["country"]["examples"] == ["DE"]
    assert "id" in create.output_properties and create.output["required"] == ["email", "name", "id"]  # allOf
    assert create.invoke is not None and create.invoke.kind == "http"
    assert create.invoke.body == "json"  # no parameters: the whole `with` is the body
    assert create.invoke.headers == {"Authorization": "Bearer ${{ secrets.ACME_BILLING_TOKEN }}"}
    assert create.side_effects is True

    get = actions["get_customer"]
    assert get.invoke is not None and get.invoke.kind == "http"
    assert get.invoke.method == "GET"
    assert get.invoke.url == "http://billing.test/v1/customers/${{ with.customer_id }}"
    assert get.input_properties["customer_id"]["description"] == "The customer's id."  # shared $ref parameter
    assert get.side_effects is False

    listing = actions["list_invoices"]
    assert listing.invoke is not None and listing.invoke.kind == "http"
    assert listing.required_inputs == ["customer_id"]
    # the header parameter is not an input
    assert set(listing.input_properties) == {"customer_id", "status", "page_size"}
    assert listing.input_properties["status"]["enum"] == ["draft", "open", "paid", "void"]
    assert listing.invoke.query == {"customer_id": "${{ with.customer_id }}",
                                    "status": "${{ with.status | default(null) }}",
                                    "page-size": "${{ with.page_size | default(null) }}"}
    # arrays are wrapped, as the invoker does
    assert listing.output["properties"]["result"]["type"] == "array"

    invoice = actions["create_invoice"]
    assert "id" not in invoice.input_properties  # readOnly leaves the request
    assert invoice.input_properties["lines"]["items"]["required"] == ["description", "amount_cents"]
    assert "secret_note" not in invoice.output_properties  # writeOnly leaves the response

    pay = actions["pay_invoice"]
    assert pay.invoke is not None and pay.invoke.kind == "http"
    assert pay.required_inputs == ["invoice_id", "amount_cents"]
    assert pay.invoke.url.endswith("/invoices/${{ with.invoice_id }}/payments")
    assert pay.invoke.body == {"amount_cents": "${{ with.amount_cents }}",
                               "method": '${{ with.method | default("card") }}'}


def test_the_imported_catalog_is_a_valid_catalog_for_the_validator() -> None:
    result = import_openapi(spec(), base_url="http://billing.test/v1", namespace="billing")
    data = {"actions": [a.model_dump(mode="json", exclude_none=True) for a in result.actions]}
    catalog = catalog_from_data(data)
    workflow = {
        "name": "bill", "steps": [
            {"id": "customer", "action": "billing.create_customer",
             "with": {"email": "a@b.example", "name": "Acme"}},
            {"id": "invoice", "action": "billing.create_invoice",
             "with": {"customer_id": "${{ steps.customer.output.id }}",
                      "lines": [{"description": "seats", "amount_cents": 100}]}},
        ],
    }
    assert validate(workflow, catalog).ok
    workflow["steps"][1]["with"]["customer_id"] = "${{ steps.customer.output.nope }}"
    assert not validate(workflow, catalog).ok


@pytest.mark.parametrize("mutate, location", [
    (lambda s: s.update({"openapi": None, "swagger": "2.0"}), "openapi"),
    (lambda s: s.pop("servers"), "servers[0].url"),
    (lambda s: s["paths"]["/customers"]["post"]["requestBody"]["content"]["application/json"].update(
        {"schema": {"$ref": "#/components/schemas/Nope"}}), "paths./customers.post.requestBody"),
    (lambda s: s["paths"]["/customers"]["post"]["requestBody"]["content"]["application/json"].update(
        {"schema": {"$ref": "other.yaml#/Customer"}}), "paths./customers.post.requestBody"),
])
def test_broken_specs_are_refused_with_a_location(mutate: Any, location: str) -> None:
    data = spec()
    mutate(data)
    with pytest.raises(DocumentError) as caught:
        import_openapi(data, base_url=None if location.startswith("servers") else "http://billing.test")
    assert caught.value.problems and caught.value.problems[0].location == location


def test_names_become_snake_case() -> None:
    assert snake_case("createCustomer") == "create_customer"
    assert snake_case("getHTTPStatus") == "get_http_status"
    assert snake_case("Acme Billing API") == "acme_billing_api"
    assert snake_case("page[size]") == "page_size"
    assert snake_case("2fa-check") == "_2fa_check"


class BillingServer:
    """A real HTTP implementation of the spec's operations, serving the spec itself too."""

    def __init__(self, server: HttpTestServer) -> None:
        self.server = server
        server.route("GET", "/specs/billing.yaml", Reply(200, SPEC_PATH.read_text(encoding="utf-8"),
                                                         content_type="application/yaml"))
        server.route("POST", "/v1/customers", self.create_customer)
        server.route("POST", "/v1/invoices", self.create_invoice)
        server.route("POST", "/v1/invoices/inv_1/payments", self.pay)
        server.route("GET", "/v1/invoices", self.list_invoices)

    @staticmethod
    def _authorized(request: RecordedRequest) -> Reply | None:
        if request.headers.get("authorization") != f"Bearer {SECRET}":
            return Reply(401, {"title": "unauthorized"})
        return None

    def create_customer(self, request: RecordedRequest) -> Reply:
        body = request.json
        created = {**body, "id": "cus_1", "created_at": "2026-01-01T00:00:00Z"}
        return self._authorized(request) or Reply(201, created)

    def create_invoice(self, request: RecordedRequest) -> Reply:
        body = request.json
        total = sum(line["amount_cents"] * line.get("quantity", 1) for line in body["lines"])
        return self._authorized(request) or Reply(201, {"id": "inv_1", "customer_id": body["customer_id"],
                                                        "status": "open", "total_cents": total,
                                                        "lines": body["lines"]})

    def pay(self, request: RecordedRequest) -> Reply:
        body = request.json
        payment = {"id": "pay_1", "invoice_id": "inv_1", "amount_cents": body["amount_cents"],
                   "status": "succeeded"}
        return self._authorized(request) or Reply(200, payment)

    def list_invoices(self, request: RecordedRequest) -> Reply:
        invoices = [{"id": "inv_1", "customer_id": request.query["customer_id"][0], "status": "paid",
                     "total_cents": 4200}]
        return self._authorized(request) or Reply(200, invoices)


async def test_import_from_a_url_then_run_imported_actions_against_the_real_server(tmp_path: Path) -> None:
    with HttpTestServer() as server:
        BillingServer(server)
        async with api_client(tmp_path, overrides={}, secrets=SecretStore({"BILLING_TOKEN": SECRET})) as api:
            r = await api.client.post("/v1/catalogs/import-openapi",
                                      json={"url": server.url("/specs/billing.yaml"), "namespace": "billing"})
            assert r.status_code == 201, r.text
            imported = r.json()
            assert imported["source"] == f"openapi:{server.url('/specs/billing.yaml')}"
            assert imported["name"] == "Acme Billing" and imported["action_count"] == 6
            assert imported["secret_name"] == "BILLING_TOKEN"  # named after the namespace
            assert imported["warnings"][0]["code"] == "skipped"
            urls = {a["name"]: a["invoke"]["url"] for a in imported["actions"]}
            assert urls["billing.create_customer"] == server.url("/v1/customers")  # relative server resolved

            workflow = {
                "name": "bill-a-customer",
                "inputs": {"type": "object", "properties": {"email": {"type": "string"}},
                           "required": ["email"]},
                "steps": [
                    {"id": "customer", "action": "billing.create_customer",
                     "with": {"email": "${{ inputs.email }}", "name": "Acme GmbH"}},
                    {"id": "invoice", "action": "billing.create_invoice",
                     "with": {"customer_id": "${{ steps.customer.output.id }}",
                              "lines": [{"description": "seats", "amount_cents": 2100, "quantity": 2}]}},
                    {"id": "pay", "action": "billing.pay_invoice",
                     "with": {"invoice_id": "${{ steps.invoice.output.id }}",
                              "amount_cents": "${{ steps.invoice.output.total_cents }}", "notify": True}},
                    {"id": "check", "action": "billing.list_invoices", "needs": ["pay"],
                     "with": {"customer_id": "${{ steps.customer.output.id }}", "status": "paid"}},
                ],
            }
            r = await api.client.post("/v1/workflows",
                                      json={"document": workflow, "catalog_id": imported["id"]})
            assert r.status_code == 201, r.text
            start = {"workflow_id": r.json()["id"], "inputs": {"email": "billing@acme.example"}}
            run = (await api.client.post("/v1/runs", json=start)).json()
            done = await api.wait_for_state(run["id"], "succeeded", "failed")
            assert done["state"] == "succeeded", done
            steps = {s["id"]: s for s in done["steps"]}
            assert steps["pay"]["output"] == {"id": "pay_1", "invoice_id": "inv_1", "amount_cents": 4200,
                                              "status": "succeeded"}
            assert steps["check"]["output"]["result"][0]["status"] == "paid"
            assert SECRET not in json.dumps(done)

        [created] = server.requests_to("/v1/customers")
        assert created.json == {"email": "billing@acme.example", "name": "Acme GmbH"}
        assert created.headers["authorization"] == f"Bearer {SECRET}"
        assert created.headers["idempotency-key"]
        [paid] = server.requests_to("/v1/invoices/inv_1/payments")
        assert paid.query == {"notify": ["true"]}
        assert paid.json == {"amount_cents": 4200, "method": "card"}  # path/query values stay out of the body
        [listed] = server.requests_to("/v1/invoices", "GET")
        assert listed.query == {"customer_id": ["cus_1"], "status": ["paid"]}  # page-size left out, not empty


async def test_import_from_content_and_the_problems_of_bad_imports(tmp_path: Path) -> None:
    text = json.dumps(spec())
    async with api_client(tmp_path) as api:
        r = await api.client.post("/v1/catalogs/import-openapi",
                                  json={"content": text, "base_url": "http://127.0.0.1:1/api",
                                        "name": "billing"})
        assert r.status_code == 201, r.text
        assert r.json()["name"] == "billing"
        assert r.json()["actions"][0]["invoke"]["url"] == "http://127.0.0.1:1/api/customers"

        r = await api.client.post("/v1/catalogs/import-openapi", json={"content": text})
        assert r.status_code == 422
        assert r.json()["problems"][0]["location"] == "servers[0].url"
        assert "base_url" in r.json()["problems"][0]["hint"]

        swagger = yaml.safe_dump({"swagger": "2.0", "info": {"title": "old"}, "paths": {}})
        r = await api.client.post("/v1/catalogs/import-openapi", json={"content": swagger})
        assert r.status_code == 422 and r.json()["problems"][0]["code"] == "unsupported_version"

        with HttpTestServer() as server:
            r = await api.client.post("/v1/catalogs/import-openapi",
                                      json={"url": server.url("/missing.yaml")})
        assert r.status_code == 422
        assert "HTTP 404" in r.json()["detail"]

        r = await api.client.post("/v1/catalogs/import-openapi", json={"url": "file:///etc/passwd"})
        assert r.status_code == 422
        r = await api.client.post("/v1/catalogs/import-openapi", json={})
        assert r.status_code == 422 and "exactly one of" in r.json()["problems"][0]["message"]
