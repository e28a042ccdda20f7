"""cdk-nag is wired into `build_app`: an unacknowledged finding fails synthesis and lands in the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.infra


def test_an_unencrypted_queue_added_to_the_stack_fails_synthesis(tmp_path: Path) -> None:
    from aws_cdk import aws_sqs as sqs

    from infra.app import SKIP_BUNDLING, build_app
    from infra.stack import BillingStack

    app = build_app(SKIP_BUNDLING, outdir=str(tmp_path))
    (stack,) = (child for child in app.node.children if isinstance(child, BillingStack))
    sqs.Queue(stack, "Careless", encryption=sqs.QueueEncryption.UNENCRYPTED)

    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()

    report = json.loads((tmp_path / "validation-report.json").read_text())
    findings = {
        (violation["ruleName"], construct["constructPath"])
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    }
    assert ("AwsSolutions-SQS2", "BillingStack/Careless/Resource") in findings
    assert ("Serverless-SQSRedrivePolicy", "BillingStack/Careless/Resource") in findings
    # Nothing else of the stack is reported: the only findings are the careless queue's.
    assert {path for _, path in findings} == {"BillingStack/Careless/Resource"}


def test_without_waf_the_stack_still_synthesizes_clean(tmp_path: Path) -> None:
    from infra.app import SKIP_BUNDLING, build_app

    assembly = build_app({**SKIP_BUNDLING, "waf_enabled": False}, outdir=str(tmp_path)).synth()

    (stack,) = assembly.stacks
    types = {resource["Type"] for resource in stack.template["Resources"].values()}
    assert "AWS::WAFv2::WebACL" not in types
    assert "AWS::ApiGateway::Stage" in types
