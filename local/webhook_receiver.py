"""`billing-webhook-receiver`: a webhook endpoint to try the system with, as a SaaS application writes one.

It verifies each delivery with the reference `standardwebhooks` library and the endpoint's secret, prints
what arrived (or why it was refused), and answers 204. `--fail-first N` answers 500 to the first N
deliveries, to watch the retries: the same `webhook-id` comes back on the schedule, then the next events
follow in order.

    billing-webhook-receiver --port 9000 --secret whsec_...
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_BODY_BYTES = 1024 * 1024


class Receiver(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], secret: str, fail_first: int) -> None:
        super().__init__(address, _Handler)
        self.webhook = Webhook(secret)
        self.fail_first = fail_first
        self.received = 0
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return
        body = self.rfile.read(length)
        with self.server.lock:
            self.server.received += 1
            number = self.server.received
        try:
            event = self.server.webhook.verify(body, dict(self.headers))
        except WebhookVerificationError as exc:
            print(f"#{number} REFUSED: {exc}", flush=True)
            self._answer(HTTPStatus.BAD_REQUEST)
            return
        summary = (
            f"{event['type']} {event['id']} customer={event['customer_id']} sequence={event['sequence']}"
        )
        if number <= self.server.fail_first:
            print(f"#{number} verified, answering 500 on purpose: {summary}", flush=True)
            self._answer(HTTPStatus.INTERNAL_SERVER_ERROR)
            return
        print(f"#{number} verified: {summary}\n    data: {json.dumps(event['data'])}", flush=True)
        self._answer(HTTPStatus.NO_CONTENT)

    def _answer(self, status: HTTPStatus) -> None:
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return  # one line per delivery is printed above


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="billing-webhook-receiver",
        description="Receive, verify (Standard Webhooks) and print the deliveries of a webhook endpoint.",
    )
    parser.add_argument("--secret", required=True, help="the endpoint's signing secret (whsec_...)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="port to listen on (default 9000)")
    parser.add_argument(
        "--fail-first", type=int, default=0, help="answer 500 to this many deliveries first (default 0)"
    )
    args = parser.parse_args(argv)
    try:
        receiver = Receiver((args.host, args.port), args.secret, args.fail_first)
    except OSError as exc:
        print(f"billing-webhook-receiver: cannot listen on {args.host}:{args.port}: {exc.strerror}")
        return 1
    except Exception as exc:  # an unreadable secret: say so, no traceback
        print(f"billing-webhook-receiver: {exc}", file=sys.stderr)
        return 2
    print(f"listening on http://{args.host}:{args.port}/ (any path); Ctrl-C stops", flush=True)
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
