"""Deployment settings from CDK context, as `cdk synth -c key=value` passes them (strings)."""

from __future__ import annotations

import aws_cdk as cdk
import pytest

from infra.app import cdk_json_context
from infra.config import DeploymentConfig

pytestmark = pytest.mark.infra


def _config(context: dict[str, object]) -> DeploymentConfig:
    return DeploymentConfig.from_context(cdk.App(context=context).node)


def test_defaults_deploy_the_usage_billing_stack_with_waf_and_a_built_layer() -> None:
    config = _config({})

    assert (config.stack_name, config.stage_name) == ("UsageBilling", "prod")
    assert config.waf_enabled is True
    assert config.build_layer is True


def test_cli_strings_switch_flags_off_and_override_names() -> None:
    config = _config(
        {
            "stack_name": "UsageBillingDev",
            "waf_enabled": "false",
            "skip_layer_build": "true",
            "stage_throttle_rate": "50",
        }
    )

    assert config.stack_name == "UsageBillingDev"
    assert config.waf_enabled is False
    assert config.build_layer is False
    assert config.stage_throttle_rate == 50.0


def test_cdk_json_holds_the_same_defaults_as_the_code() -> None:
    context = cdk_json_context()
    defaults = DeploymentConfig()

    assert context["stack_name"] == defaults.stack_name
    assert context["stage_name"] == defaults.stage_name
    assert context["waf_enabled"] == defaults.waf_enabled
