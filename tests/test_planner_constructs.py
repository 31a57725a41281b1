"""The offline planner on every construct of issue 3, with our own sentences (not the benchmark's)."""

from __future__ import annotations

import pytest
from test_planner_support import actions, depends, edges, plan, step_of

from planner.offline import OfflinePlanner, PlanningError

# -- sequence


@pytest.mark.parametrize(
    "text",
    [
        "Create a CRM account for Brightwater, then post a note in #accounts.",
        "Create a CRM account for Brightwater. After that, post a note in #accounts.",
        "Create a CRM account for Brightwater, followed by a note in #accounts.",
        "Create a CRM account for Brightwater. Once that's done, post a note in #accounts.",
        "Create a CRM account for Brightwater and finally post a note in #accounts.",
    ],
)
def test_sequence_markers_chain_steps(small: OfflinePlanner, text: str) -> None:
    wf = plan(small, text).workflow
    assert actions(wf) == ["chat.post_message", "crm.create_account"]
    assert edges(wf) == {("crm.create_account", "chat.post_message")}


def test_before_x_do_y_puts_y_first(small: OfflinePlanner) -> None:
    wf = plan(small, "Before suspending the workspace, text the owner at +15550001111.").workflow
    assert edges(wf) == {("sms.send_message", "workspace.suspend_workspace")}


def test_plain_list_is_a_sequence(small: OfflinePlanner) -> None:
    wf = plan(
        small, "Export the pipeline report, post it in #revenue and email it to cfo@example.org."
    ).workflow
    assert edges(wf) == {
        ("reports.export_report", "chat.post_message"),
        ("chat.post_message", "email.send_message"),
    }


# -- parallel branches and joins


@pytest.mark.parametrize(
    "text",
    [
        "Export the weekly report. At the same time, suspend the old workspace.",
        "Export the weekly report and, in parallel, suspend the old workspace.",
        "Export the weekly report; meanwhile, suspend the old workspace.",
        "Export the weekly report and concurrently suspend the old workspace.",
        "Both export the weekly report and suspend the old workspace.",
    ],
)
def test_parallel_markers_give_independent_steps(small: OfflinePlanner, text: str) -> None:
    wf = plan(small, text).workflow
    assert actions(wf) == ["reports.export_report", "workspace.suspend_workspace"]
    assert edges(wf) == set()


def test_while_x_runs_y_is_parallel(small: OfflinePlanner) -> None:
    wf = plan(
        small,
        "Create a CRM account for Dunmore. Export the usage report next, "
        "and while the export runs, text the rep at +15550001234.",
    ).workflow
    export, text = step_of(wf, "reports.export_report"), step_of(wf, "sms.send_message")
    assert not depends(wf, text, export) and not depends(wf, export, text)


def test_join_waits_for_every_branch(small: OfflinePlanner) -> None:
    wf = plan(
        small,
        "Export the churn report and suspend workspace ws_17 at the same time. "
        "When both are done, post a summary in #ops.",
    ).workflow
    assert edges(wf) == {
        ("reports.export_report", "chat.post_message"),
        ("workspace.suspend_workspace", "chat.post_message"),
    }


def test_branch_after_a_named_step(small: OfflinePlanner) -> None:
    wf = plan(
        small,
        "Create an account for Lumen and provision a workspace for them in parallel. "
        "Once the workspace exists, invite ana@lumen.example to it.",
    ).workflow
    invite = step_of(wf, "workspace.invite_user")
    assert invite.needs == [step_of(wf, "workspace.create_workspace").id]
    assert invite.with_["workspace_id"] == f"${{{{ steps.{invite.needs[0]}.output.workspace_id }}}}"


# -- conditions


def test_if_otherwise_gives_every_branch_step_its_own_if(small: OfflinePlanner) -> None:
    wf = plan(
        small,
        "Score customer cus_88 for fraud risk. If the score is above 700, suspend workspace ws_88 "
        "and text the fraud desk at +15550009999; otherwise post an all-clear in #risk.",
    ).workflow
    suspend, text = step_of(wf, "workspace.suspend_workspace"), step_of(wf, "sms.send_message")
    post = step_of(wf, "chat.post_message")
    assert suspend.if_ and text.if_ and post.if_
    assert "score > 700" in suspend.if_
    assert post.if_ != suspend.if_ and "not" in post.if_
    risk = step_of(wf, "risk.score_customer")
    assert all(depends(wf, s, risk) for s in (suspend, text, post))


def test_skip_does_not_spread_to_the_next_sentence(small: OfflinePlanner) -> None:
    wf = plan(
        small,
        "If the deal is unusually large, a finance lead has to approve it. Then charge customer cus_9 $250.",
    ).workflow
    approval, charge = step_of(wf, "core.approval"), step_of(wf, "payments.charge_card")
    assert approval.if_ is not None and charge.if_ is None
    assert charge.needs == [approval.id]
    assert wf.inputs is not None and any(v.get("type") == "boolean" for v in wf.inputs["properties"].values())


def test_only_for_is_a_condition(small: OfflinePlanner) -> None:
    wf = plan(small, "Only for enterprise customers, post the renewal in #enterprise.").workflow
    assert step_of(wf, "chat.post_message").if_ is not None


# -- compensation


def test_if_x_fails_undo_y_sets_compensate(small: OfflinePlanner) -> None:
    wf = plan(
        small,
        "Create a CRM account for Orchid Labs, then charge customer cus_41 $1,200. "
        "If the charge fails, roll back the account.",
    ).workflow
    account = step_of(wf, "crm.create_account")
    assert account.compensate is not None and account.compensate.action == "crm.delete_account"
    assert account.compensate.with_ == {"account_id": f"${{{{ steps.{account.id}.output.account_id }}}}"}
    assert step_of(wf, "payments.charge_card").compensate is None
    assert "crm.delete_account" not in actions(wf)  # an undo is never a step of its own


@pytest.mark.parametrize("undo", ["refund the charge", "reverse the payment", "undo the charge"])
def test_undo_verbs_pick_the_right_compensation(small: OfflinePlanner, undo: str) -> None:
    wf = plan(
        small,
        f"Charge customer cus_7 $90, then provision a workspace called 'north'. "
        f"If the workspace can't be created, {undo}.",
    ).workflow
    charge = step_of(wf, "payments.charge_card")
    assert charge.compensate is not None and charge.compensate.action == "payments.refund_charge"
    assert step_of(wf, "workspace.create_workspace").compensate is None


# -- retries, timeouts, waits


@pytest.mark.parametrize(
    ("phrase", "attempts"),
    [
        ("retry up to 3 times", 4),
        ("try 5 times", 5),
        ("retry twice", 3),
        ("give it up to 6 attempts", 6),
        ("retrying up to two more times if it errors", 3),
    ],
)
def test_retry_counts_all_attempts(small: OfflinePlanner, phrase: str, attempts: int) -> None:
    wf = plan(small, f"Charge customer cus_3 $20, {phrase}, then post a receipt in #billing.").workflow
    charge = step_of(wf, "payments.charge_card")
    assert charge.retry is not None and charge.retry.max_attempts == attempts
    assert step_of(wf, "chat.post_message").retry is None


def test_timeout(small: OfflinePlanner) -> None:
    wf = plan(small, "Export report rep_1 with a 90 second timeout, then post it in #data.").workflow
    assert step_of(wf, "reports.export_report").timeout_s == 90


@pytest.mark.parametrize(
    ("phrase", "seconds"),
    [
        ("wait two days", 172800),
        ("hold off for 6 hours", 21600),
        ("give them a week", 604800),
        ("wait until the next morning", 86400),
    ],
)
def test_waits_become_core_wait(small: OfflinePlanner, phrase: str, seconds: int) -> None:
    wf = plan(
        small, f"Email the trial notice to ops@kelp.example, {phrase}, then suspend workspace ws_5."
    ).workflow
    wait = step_of(wf, "core.wait")
    assert wait.with_ == {"seconds": seconds}
    assert edges(wf) == {("email.send_message", "core.wait"), ("core.wait", "workspace.suspend_workspace")}


def test_duration_after_that_is_a_wait(small: OfflinePlanner) -> None:
    wf = plan(small, "Suspend workspace ws_2. Thirty days after that, delete the workspace.").workflow
    assert step_of(wf, "core.wait").with_ == {"seconds": 30 * 86400}
    assert edges(wf) == {
        ("workspace.suspend_workspace", "core.wait"),
        ("core.wait", "workspace.delete_workspace"),
    }


# -- approvals, loops, logs, failing the run


@pytest.mark.parametrize(
    "text",
    [
        "The head of sales must sign off first; then charge customer cus_5 $400.",
        "Get approval from finance, then charge customer cus_5 $400.",
    ],
)
def test_approvals(small: OfflinePlanner, text: str) -> None:
    wf = plan(small, text).workflow
    approval = step_of(wf, "core.approval")
    assert approval.with_["prompt"]
    assert edges(wf) == {("core.approval", "payments.charge_card")}


def test_for_each(small: OfflinePlanner) -> None:
    wf = plan(small, "Invite every address on the beta list to workspace ws_beta.").workflow
    invite = step_of(wf, "workspace.invite_user")
    assert invite.for_each == "${{ inputs.beta_list }}"
    assert invite.with_["email"] == "${{ item }}"
    assert wf.inputs is not None and wf.inputs["properties"]["beta_list"]["type"] == "array"


def test_log_and_fail(small: OfflinePlanner) -> None:
    wf = plan(
        small,
        "Score customer cus_1 for risk; if the decision is 'block', fail the run with the message "
        "'blocked by risk'. Then record in the run log that the check passed.",
    ).workflow
    fail, log = step_of(wf, "core.fail"), step_of(wf, "core.log")
    assert fail.with_ == {"message": "blocked by risk"} and fail.if_ is not None
    assert "decision == 'block'" in fail.if_
    assert log.with_["message"] == "the check passed"


# -- honesty


def test_unmatched_clause_is_reported_not_forced(small: OfflinePlanner) -> None:
    result = plan(small, "Send a fax to the landlord, then post a note in #facilities.")
    assert actions(result.workflow) == ["chat.post_message"]
    assert any("fax" in w and "closest:" in w for w in result.warnings)


def test_nothing_matches_is_an_error(small: OfflinePlanner) -> None:
    with pytest.raises(PlanningError) as err:
        small.plan("Water the plants in the lobby.")
    assert err.value.warnings


# -- literals and inputs


def test_amount_in_cents_and_integer_fields(small: OfflinePlanner) -> None:
    wf = plan(small, "Charge customer cus_77 $1,980 for the renewal.").workflow
    charge = step_of(wf, "payments.charge_card")
    assert charge.with_["amount"] == 198000
    assert charge.with_["customer_id"] == "cus_77"


def test_plain_number_amount_and_counts(small: OfflinePlanner) -> None:
    wf = plan(small, "Create a quote for customer cus_12 for 25 seats totalling $1,980.").workflow
    quote = step_of(wf, "quotes.create_quote")
    assert quote.with_["total"] == 1980 and isinstance(quote.with_["total"], int)
    assert quote.with_["seats"] == 25


def test_emails_channels_and_missing_inputs(small: OfflinePlanner) -> None:
    wf = plan(
        small, "Create a workspace in eu-west for Teal, then invite kim@teal.example and post in #onboarding."
    ).workflow
    workspace, invite = step_of(wf, "workspace.create_workspace"), step_of(wf, "workspace.invite_user")
    assert workspace.with_["region"] == "eu-west"
    assert workspace.with_["name"] == "${{ inputs.name }}"
    assert invite.with_ == {
        "email": "kim@teal.example",
        "workspace_id": f"${{{{ steps.{workspace.id}.output.workspace_id }}}}",
    }
    post = step_of(wf, "chat.post_message")
    assert post.with_["channel"] == "#onboarding"
    assert wf.inputs is not None and {"name", "text"} <= set(wf.inputs["properties"])


# -- the benchmark catalog, with our own sentences


def test_bench_catalog_onboarding(bench: OfflinePlanner) -> None:
    result = plan(
        bench,
        "Open a billing customer for Harbor Tea (billing@harbortea.example) and put them on the "
        "Growth plan. Then spin up a workspace in us-east and, at the same time, tell #cs in chat "
        "that Harbor Tea is coming. If the workspace fails, cancel the subscription.",
    )
    wf = result.workflow
    assert actions(wf) == [
        "billing.create_customer",
        "billing.create_subscription",
        "chat.post_message",
        "provisioning.create_tenant",
    ]
    sub = step_of(wf, "billing.create_subscription")
    assert sub.compensate is not None and sub.compensate.action == "billing.cancel_subscription"
    assert ("billing.create_customer", "billing.create_subscription") in edges(wf)
    tenant, chat = step_of(wf, "provisioning.create_tenant"), step_of(wf, "chat.post_message")
    assert not depends(wf, chat, tenant) and not depends(wf, tenant, chat)
    assert step_of(wf, "billing.create_customer").with_["email"] == "billing@harbortea.example"


def test_bench_catalog_vocabulary(bench: OfflinePlanner) -> None:
    wf = plan(bench, "Cut off access to workspace t_77, then let the team know in #support.").workflow
    assert actions(wf) == ["chat.post_message", "provisioning.suspend_tenant"]
    assert step_of(wf, "provisioning.suspend_tenant").with_["tenant_id"] == "t_77"
    wf = plan(bench, "Charge customer cus_2 $75.50 and retry up to 2 times.").workflow
    charge = step_of(wf, "payments.charge_card")
    assert charge.with_["amount"] == 7550
    assert charge.retry is not None and charge.retry.max_attempts == 3


def test_side_step_whatever_the_result(small: OfflinePlanner) -> None:
    wf = plan(
        small,
        "Score customer cus_4 for risk. Right after that, whatever the result, post the score in "
        "#risk. If the decision is 'review', text the analyst at +15550004444.",
    ).workflow
    score, post, text = (
        step_of(wf, a) for a in ("risk.score_customer", "chat.post_message", "sms.send_message")
    )
    assert post.needs == [score.id] and text.needs == [score.id]


def test_listed_names_become_parallel_steps_that_later_steps_wait_for(bench: OfflinePlanner) -> None:
    wf = plan(
        bench, "Turn on 'beta_ui', 'sso' and 'audit_log' for tenant t_5, then email ops@t5.example."
    ).workflow
    features = [s for s in wf.steps if s.action == "provisioning.enable_feature"]
    assert sorted(s.with_["feature"] for s in features) == ["audit_log", "beta_ui", "sso"]
    assert all(s.with_["tenant_id"] == "t_5" for s in features)
    assert sorted(step_of(wf, "email.send_message").needs) == sorted(s.id for s in features)


def test_but_do_x_first_reorders(small: OfflinePlanner) -> None:
    wf = plan(
        small, "Invite lee@fjord.example to workspace ws_9, but suspend workspace ws_old first."
    ).workflow
    assert edges(wf) == {("workspace.suspend_workspace", "workspace.invite_user")}


def test_after_a_gerund_is_a_step_of_its_own(small: OfflinePlanner) -> None:
    wf = plan(small, "Post the launch note in #news after exporting report rep_launch.").workflow
    assert edges(wf) == {("reports.export_report", "chat.post_message")}
    wf = plan(small, "Create an account for Vale. After exporting report rep_vale, post it in #bi.").workflow
    assert ("reports.export_report", "chat.post_message") in edges(wf)


# -- "A, then B and C in parallel": the trailing "in parallel" groups what follows "then"


@pytest.mark.parametrize(
    "text",
    [
        "Open a CRM account for Harbor Lane, then spin up a tenant in us-west and create their billing "
        "customer in parallel; if the billing customer can't be created, undo the tenant.",
        "Open a CRM account for Harbor Lane; then spin up a tenant in us-west and create their billing "
        "customer at the same time. If the billing customer can't be created, undo the tenant.",
    ],
)
def test_then_b_and_c_in_parallel_follow_a(bench: OfflinePlanner, text: str) -> None:
    wf = plan(bench, text).workflow
    account, tenant, customer = (
        step_of(wf, a)
        for a in ("crm.create_account", "provisioning.create_tenant", "billing.create_customer")
    )
    assert account.needs == []
    assert tenant.needs == [account.id] and customer.needs == [account.id]
    assert tenant.compensate is not None and tenant.compensate.action == "provisioning.delete_tenant"


def test_in_parallel_without_then_still_groups_everything(bench: OfflinePlanner) -> None:
    wf = plan(
        bench, "Open a CRM account for Harbor Lane, spin up a tenant in us-west and create their "
        "billing customer, all at the same time."
    ).workflow
    assert all(s.needs == [] for s in wf.steps)


# -- one name the request is about, reused instead of asked for twice


def test_the_name_a_request_is_about_feeds_every_step_that_needs_it(bench: OfflinePlanner) -> None:
    wf = plan(
        bench, "Open the CRM account for Harbor Lane, then set up billing and spin up a tenant in "
        "us-west in parallel."
    ).workflow
    assert step_of(wf, "crm.create_account").with_["name"] == "Harbor Lane"
    assert step_of(wf, "billing.create_customer").with_["name"] == "Harbor Lane"
    # the tenant's name is a subdomain ("^[a-z0-9-]+$"): not the company's name, still asked for
    tenant_name = step_of(wf, "provisioning.create_tenant").with_["name"]
    assert tenant_name.startswith("${{ inputs.")
    names = [k for k in (wf.inputs or {}).get("properties", {}) if k.endswith("name")]
    assert len(names) == 1


def test_a_person_does_not_inherit_the_company_name(bench: OfflinePlanner) -> None:
    wf = plan(
        bench, "Open the CRM account for Harbor Lane, then add a contact there with email "
        "kim@harborlane.example."
    ).workflow
    contact = step_of(wf, "crm.create_contact")
    assert "Harbor Lane" not in contact.with_.values()
