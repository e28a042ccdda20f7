"""Billing runs through the API on moto: POST starts the state machine, which closes the period for real."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from billing import resources
from billing.bootstrap import get_services
from billing.settings import get_settings
from billing.workflows.cycle_close import cycle_close_definition
from functions.cycle_close.handler import handler as cycle_close_handler
from local.lambda_context import new_context
from local.stepfunctions import LambdaRouter, register_functions
from tests.integration.test_cycle_close import send, set_up_customer
from tests.support import api_event, call_api

pytestmark = pytest.mark.usefixtures("aws")


@pytest.fixture(autouse=True)
def state_machine(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    def invoke(event: Any) -> Any:
        return cycle_close_handler(event, new_context(resources.CYCLE_CLOSE_FUNCTION_NAME))

    arns = register_functions(
        boto3.client("lambda"), boto3.client("iam"), [resources.CYCLE_CLOSE_FUNCTION_NAME]
    )
    LambdaRouter.install({resources.CYCLE_CLOSE_FUNCTION_NAME: invoke})
    arn = boto3.client("stepfunctions").create_state_machine(
        name=resources.CYCLE_CLOSE_STATE_MACHINE.local_name,
        definition=json.dumps(
            cycle_close_definition(arns[resources.CYCLE_CLOSE_FUNCTION_NAME], retry_seconds=1)
        ),
        roleArn="arn:aws:iam::123456789012:role/cycle-close",
    )["stateMachineArn"]
    monkeypatch.setenv(resources.CYCLE_CLOSE_STATE_MACHINE.env_var, arn)
    monkeypatch.setenv("BILLING_SELLER_TAX_REGISTRATIONS", "US-NY")
    get_settings.cache_clear()
    get_services.cache_clear()
    yield arn
    LambdaRouter.uninstall({resources.CYCLE_CLOSE_FUNCTION_NAME: invoke})


def api(method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    status, payload, _ = call_api(api_event(method, path, body, **kwargs))
    return status, payload


def wait_for_run(run_id: str) -> dict[str, Any]:
    for _ in range(200):
        status, run = api("GET", f"/v1/billing-runs/{run_id}")
        assert status == 200, run
        if run["status"] != "running":
            return run
        time.sleep(0.05)
    raise AssertionError("the billing run did not finish")


def test_a_billing_run_finalizes_the_ended_period_and_answers_with_its_invoice() -> None:
    set_up_customer()
    send([("e1", "2026-10-25T10:00:00Z", 1500), ("e2", "2026-10-31T23:59:59Z", 500)])

    status, started = api("POST", "/v1/billing-runs", {"as_of": "2026-11-25T00:00:00Z"})
    assert status == 202
    assert started["status"] == "running"
    assert started["id"].startswith("run_")

    run = wait_for_run(started["id"])
    assert run["status"] == "succeeded", run
    [invoice_id] = run["invoices"]

    status, invoice = api("GET", f"/v1/invoices/{invoice_id}")
    assert status == 200
    assert (invoice["status"], invoice["subtotal"], invoice["tax"], invoice["total"]) == (
        "finalized",
        "59.00",
        "2.36",
        "61.36",
    )
    assert invoice["amount_due"] == "61.36"
    status, listed = api("GET", "/v1/invoices", query={"customer_id": "cus_1"})
    assert [item["id"] for item in listed["data"]] == [invoice_id]

    status, ledger = api("GET", "/v1/customers/cus_1/ledger")
    assert status == 200
    assert ledger["balances"]["receivable"] == "61.36"
    assert ledger["balances"]["revenue"] == "59.00"
    assert ledger["balances"]["tax_payable"] == "2.36"
    assert ledger["chain"]["ok"] is True
    assert [entry["sequence"] for entry in ledger["entries"]] == [1, 2, 3]

    # Running it again creates nothing new.
    status, again = api("POST", "/v1/billing-runs", {"as_of": "2026-11-25T00:00:00Z"})
    assert wait_for_run(again["id"])["invoices"] == []
    assert len(api("GET", "/v1/customers/cus_1/ledger")[1]["entries"]) == 3


def test_billing_run_input_errors_and_other_tenants() -> None:
    set_up_customer()

    assert api("POST", "/v1/billing-runs", {"as_of": "yesterday"})[0] == 422
    assert api("POST", "/v1/billing-runs", {"as_of": "2999-01-01T00:00:00Z"})[0] == 422
    assert api("POST", "/v1/billing-runs", {"when": "now"})[0] == 422
    assert api("POST", "/v1/billing-runs", {"customer_id": "cus_nobody"})[0] == 404
    assert api("POST", "/v1/billing-runs", [1])[0] == 400

    status, started = api("POST", "/v1/billing-runs", None)
    assert status == 202
    assert api("GET", f"/v1/billing-runs/{started['id']}", tenant_id="globex")[0] == 404
    assert api("GET", "/v1/invoices/inv_nothing")[0] == 404
    assert api("GET", "/v1/invoices")[0] == 400
    assert api("GET", "/v1/customers/cus_1/ledger", tenant_id="globex")[0] == 404
    wait_for_run(started["id"])
