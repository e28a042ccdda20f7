"""moto in server mode on a loopback port: the AWS the local runtime (and any AWS client) talks to."""

from __future__ import annotations

import logging

from moto.server import ThreadedMotoServer

REGION = "us-east-1"

# Fake credentials: moto accepts anything, and these make sure no real account is ever reached.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


class LocalMoto:
    """A `ThreadedMotoServer` bound to `host:port` (port 0 picks a free one)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4566) -> None:
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self._started = False

    def start(self) -> None:
        # Werkzeug logs every request at INFO; the runtime's output is for the developer, not for moto.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        self._started = True

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return self._server.get_host_and_port()[1]

    def stop(self) -> None:
        if self._started:
            self._server.stop()
            self._started = False


def forget_shard_iterator(iterator: str) -> None:
    """Drop a used DynamoDB Streams shard iterator from moto's backend (in this process).

    moto keeps every iterator it hands out (each GetRecords makes one) and never expires them; the local
    stream pump, which polls a few times a second, passes this so that moto's memory does not grow with
    every poll. In AWS an iterator expires 15 minutes after it was issued. The iterator is
    `<stream ARN>|1|<id>`, the stream ARN naming the region and account of the backend holding it.
    """
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    parts = iterator.split(":", 5)
    if len(parts) < 6:
        return
    region, account = parts[3], parts[4]
    if account in dynamodbstreams_backends and region in dynamodbstreams_backends[account]:
        dynamodbstreams_backends[account][region].shard_iterators.pop(iterator, None)


def aws_environment(endpoint_url: str, region: str = REGION) -> dict[str, str]:
    """The variables that point boto3, the AWS CLI and `billing-admin` at moto."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        **FAKE_CREDENTIALS,
    }
