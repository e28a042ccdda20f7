"""The README's receiver (`billing-webhook-receiver`): verifies with standardwebhooks, fails on request."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from billing.domain.webhooks.signing import new_secret, webhook_headers
from local.webhook_receiver import Receiver, main

SECRET = new_secret(bytes(range(32)))
EVENT = {
    "type": "invoice.finalized",
    "id": "evt_1",
    "customer_id": "cus_1",
    "sequence": 1,
    "created_at": "2026-11-01T00:00:00Z",
    "data": {"invoice_id": "inv_1", "total": "61.36"},
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(("127.0.0.1", 0), SECRET, fail_first=1)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def post(server: Receiver, secret: str = SECRET) -> int:
    body = json.dumps(EVENT).encode()
    headers = webhook_headers([secret], "evt_1", int(time.time()), body)
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.server_address[1]}/hooks", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - a loopback test server
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_it_fails_the_first_deliveries_it_is_told_to_then_accepts_verified_ones(
    receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    assert post(receiver) == 500
    assert post(receiver) == 204

    printed = capsys.readouterr().out
    assert "#1 verified, answering 500 on purpose: invoice.finalized evt_1" in printed
    assert "#2 verified: invoice.finalized evt_1 customer=cus_1 sequence=1" in printed


def test_a_delivery_signed_with_another_secret_is_refused(
    receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    assert post(receiver, secret=new_secret(bytes(32))) == 400
    assert "REFUSED" in capsys.readouterr().out


def test_an_unreadable_secret_is_a_message_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--secret", "whsec_!!!", "--port", "0"]) == 2
    assert "billing-webhook-receiver:" in capsys.readouterr().err
