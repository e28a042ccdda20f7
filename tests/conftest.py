"""Shared fixtures: fake AWS credentials, moto with every resource of `billing.resources` created."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import settings as hypothesis_settings
from moto import mock_aws

from billing.adapters.provisioning import create_all
from billing.bootstrap import get_services
from billing.settings import Settings, get_settings

EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"

# `make test` (and so CI) runs the properties derandomized: the same examples every run, so a red build
# is a real regression. A plain `pytest` explores new examples each run; a failure it finds is kept in
# .hypothesis/ and replayed until fixed.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def load_event(name: str) -> dict[str, Any]:
    """A sample Lambda event from `events/` (the same files anyone can invoke a handler with)."""
    return json.loads((EVENTS_DIR / name).read_text())


@pytest.fixture(autouse=True)
def _aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # Never reach a real account from a test.
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "UsageBilling",
        "POWERTOOLS_DEV": "false",
    }.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    get_settings.cache_clear()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """moto with every table, queue and key created; the functions' environment variables set."""
    with mock_aws():
        env = create_all(boto3.client("dynamodb"), boto3.client("sqs"), boto3.client("kms"))
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        get_settings.cache_clear()
        get_services.cache_clear()
        yield env
        get_settings.cache_clear()
        get_services.cache_clear()


@pytest.fixture
def settings(aws: dict[str, str]) -> Settings:
    return Settings.from_env()
