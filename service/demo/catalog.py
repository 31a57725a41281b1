"""The demo's action catalog: the demo services over HTTP and the onboarding email over SMTP.

Written to a file (so people can read it and pass it to `overture plan` / `overture run` too) with
the services' real address baked into the URLs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workflow.loader import dump_data

REQUEST = (
    "When a new enterprise customer signs up, update the CRM, send the onboarding email sequence, "
    "provision the account, notify the customer success team and set up billing — in the right "
    "order; if billing setup fails, undo the provisioning and the CRM update."
)

SENDER = "onboarding@overture-demo.example"

# one customer per run; the form in the UI starts from these
DEMO_INPUTS: dict[str, Any] = {
    "company": "Acme Robotics",
    "email": "it-admin@acme-robotics.example",
    "plan": "enterprise",
    "seats": 250,
}



def _customer_values(customer: dict[str, Any]) -> dict[str, Any]:
    company = customer["company"]
    return {
        **customer,
        "to": customer["email"],
        "subject": f"Welcome to Overture, {company}!",
        "body": (f"Hello {company} team,\n\nyour {customer.get('plan', 'enterprise')} account is being "
                 "set up. Over the next days you will get a short series of emails: getting started, "
                 "inviting your team, and connecting your tools.\n\nThe onboarding team"),
        "channel": "#customer-success",
        "text": f"New enterprise customer: {company} ({customer.get('seats', '?')} seats), please say hello.",
        "message": f"Onboarding {company}",
        "prompt": f"Approve onboarding {company}?",
    }


def inputs_for(schema: dict[str, Any] | None, customer: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run inputs for whatever a plan asks: the offline planner turns the inputs it cannot wire from
    earlier steps into run inputs, named after the field (`channel`) or step and field
    (`setup_billing_email`); each gets the customer's value for the field its name ends with."""
    values = _customer_values(customer or DEMO_INPUTS)
    properties = (schema or {}).get("properties") or {}
    inputs: dict[str, Any] = {}
    longest_first = sorted(values, key=len, reverse=True)
    for name in properties:
        key = next((k for k in longest_first if name == k or name.endswith(f"_{k}")), None)
        if key is not None:
            inputs[name] = values[key]
    return inputs


_S = {"type": "string"}


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _http(method: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "http", "method": method, "url": url, "timeout_s": 10, **extra}


def demo_catalog(services_url: str, smtp_host: str, smtp_port: int) -> dict[str, Any]:
    """The catalog as plain data (`actions: [...]`), calling the services at `services_url`."""
    base = services_url.rstrip("/")
    customer = {
        "company": {**_S, "description": "The customer's company name."},
        "email": {**_S, "format": "email", "description": "The customer's admin contact email."},
        "plan": {**_S, "description": "The plan they bought, e.g. enterprise."},
        "seats": {"type": "integer", "minimum": 1, "description": "Number of licensed seats."},
    }
    return {"actions": [
        {
            "name": "crm.update_account",
            "description": "Create or update the customer's account record in the CRM.",
            "input": _obj(customer, ["company", "email"]),
            "output": _obj({"account_id": _S, "stage": _S}, ["account_id"]),
            "compensation": "crm.delete_account",
            "invoke": _http("POST", f"{base}/crm/accounts"),
            "tags": ["crm"],
        },
        {
            "name": "crm.delete_account",
            "description": "Delete the customer's account record from the CRM (undoes the CRM update).",
            "input": _obj({"account_id": _S}, ["account_id"]),
            "output": _obj({"deleted": {"type": "boolean"}}),
            "invoke": _http("DELETE", f"{base}/crm/accounts/${{{{ with.account_id }}}}", body="none"),
            "tags": ["crm", "undo"],
        },
        {
            "name": "email.send_onboarding_sequence",
            "description": "Send the customer the onboarding email sequence, starting with a welcome email.",
            "input": _obj({
                "to": {**_S, "format": "email", "description": "The customer's email address."},
                "subject": _S,
                "body": _S,
            }, ["to", "subject", "body"]),
            "output": _obj({"message_id": _S, "accepted": {"type": "array", "items": _S}}),
            "invoke": {"kind": "smtp", "host": smtp_host, "port": smtp_port, "sender": SENDER,
                       "timeout_s": 10},
            "tags": ["email"],
        },
        {
            "name": "provisioning.provision_account",
            "description": "Provision the customer's account: create their tenant, workspace and seats.",
            "input": _obj({"account_id": _S, **customer}, ["account_id", "company"]),
            "output": _obj({"tenant_id": _S, "region": _S}, ["tenant_id"]),
            "compensation": "provisioning.deprovision_account",
            "invoke": _http("POST", f"{base}/provisioning/accounts"),
            "tags": ["provisioning"],
        },
        {
            "name": "provisioning.deprovision_account",
            "description": "Deprovision the customer's account: delete the tenant (undoes provisioning).",
            "input": _obj({"tenant_id": _S}, ["tenant_id"]),
            "output": _obj({"deprovisioned": {"type": "boolean"}}),
            "invoke": _http("DELETE", f"{base}/provisioning/accounts/${{{{ with.tenant_id }}}}", body="none"),
            "tags": ["provisioning", "undo"],
        },
        {
            "name": "chat.notify_team",
            "description": "Notify a team, such as the customer success team, with a message in team chat.",
            "input": _obj({
                "channel": {**_S, "description": "Team channel, e.g. #customer-success."},
                "text": _S,
            }, ["channel", "text"]),
            "output": _obj({"message_id": _S}, ["message_id"]),
            "invoke": _http("POST", f"{base}/chat/messages"),
            "side_effects": True,
            "tags": ["chat"],
        },
        {
            "name": "billing.setup_billing",
            "description": "Set up billing for the customer: create the billing customer and subscription.",
            # billing is set up for a provisioned tenant, so it comes after provisioning: a declined
            # card then has a CRM record and a tenant to undo
            "input": _obj({"account_id": _S, "tenant_id": {**_S, "description": "The provisioned tenant."},
                           **customer}, ["account_id", "tenant_id", "email"]),
            "output": _obj({"customer_id": _S, "status": _S}, ["customer_id"]),
            "compensation": "billing.cancel_billing",
            "invoke": _http("POST", f"{base}/billing/customers"),
            "tags": ["billing"],
        },
        {
            "name": "billing.cancel_billing",
            "description": "Cancel the customer's billing setup and subscription (undoes billing setup).",
            "input": _obj({"customer_id": _S}, ["customer_id"]),
            "output": _obj({"cancelled": {"type": "boolean"}}),
            "invoke": _http("DELETE", f"{base}/billing/customers/${{{{ with.customer_id }}}}", body="none"),
            "tags": ["billing", "undo"],
        },
    ]}


def write_demo_catalog(path: Path, services_url: str, smtp_host: str, smtp_port: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ("# Written by `overture demo`: the demo services on this machine. Edit freely; the demo\n"
              "# writes it again on its next start.\n")
    path.write_text(header + dump_data(demo_catalog(services_url, smtp_host, smtp_port)), encoding="utf-8")
    return path
