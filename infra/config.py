"""Deployment settings read from CDK context (cdk.json, or `cdk synth -c key=value`), validated once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from constructs import Node

REPO_ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS_DIR = REPO_ROOT / "functions"
SHARED_DIR = REPO_ROOT / "shared"
PYPROJECT = REPO_ROOT / "pyproject.toml"
BUILD_DIR = REPO_ROOT / ".build"

SERVICE_NAME = "usage-billing"
METRICS_NAMESPACE = "UsageBilling"


@dataclass(frozen=True)
class DeploymentConfig:
    stack_name: str = "UsageBilling"
    stage_name: str = "prod"
    # The stage-wide ceiling across all tenants; each tenant is held to DEFAULT_TENANT_THROTTLE below it.
    stage_throttle_rate: float = 1000.0
    stage_throttle_burst: int = 2000
    waf_enabled: bool = True
    alarm_email: str = ""
    # Offline synth: the shared layer is not built (see infra.constructs.layer); never deploy the result.
    build_layer: bool = True

    @classmethod
    def from_context(cls, node: Node) -> DeploymentConfig:
        defaults = cls()
        return cls(
            stack_name=str(node.try_get_context("stack_name") or defaults.stack_name),
            stage_name=str(node.try_get_context("stage_name") or defaults.stage_name),
            stage_throttle_rate=float(
                node.try_get_context("stage_throttle_rate") or defaults.stage_throttle_rate
            ),
            stage_throttle_burst=int(
                node.try_get_context("stage_throttle_burst") or defaults.stage_throttle_burst
            ),
            waf_enabled=_as_bool(node.try_get_context("waf_enabled"), defaults.waf_enabled),
            alarm_email=str(node.try_get_context("alarm_email") or ""),
            build_layer=not _as_bool(node.try_get_context("skip_layer_build"), False),
        )


def _as_bool(value: object, default: bool) -> bool:
    # `-c waf_enabled=false` arrives as the string "false".
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)
