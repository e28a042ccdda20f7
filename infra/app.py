"""The CDK app entry point (`cdk synth` runs `python -m infra.app`, see cdk.json).

`build_app(context)` is what tests call: it takes cdk.json's context as defaults, overlays `context`,
and applies cdk-nag (AwsSolutions and Serverless packs) as CDK validation plugins, so any
unacknowledged finding fails synthesis and lands in `policy-validation-report.json`.

Bundling (the pip build of the shared layer) is skipped with CDK's standard context switch:
`build_app({"aws:cdk:bundling-stacks": []})`, or `cdk synth -c aws:cdk:bundling-stacks=[]`. Such an
assembly is for inspection and tests only: its layer asset is the unbuilt `shared/` folder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from infra.config import REPO_ROOT, DeploymentConfig
from infra.stack import BillingStack

SKIP_BUNDLING: dict[str, Any] = {"aws:cdk:bundling-stacks": []}


def cdk_json_context() -> dict[str, Any]:
    return dict(json.loads((REPO_ROOT / "cdk.json").read_text()).get("context", {}))


def build_app(context: Mapping[str, Any] | None = None, *, outdir: str | None = None) -> cdk.App:
    # Context the CDK CLI passes (cdk.json, -c flags) still wins over these defaults.
    app = cdk.App(context={**cdk_json_context(), **(context or {})}, outdir=outdir)
    config = DeploymentConfig.from_context(app.node)
    BillingStack(
        app,
        "BillingStack",
        stack_name=config.stack_name,
        description="usage-billing: HTTP API, usage events, catalog, cycle close, invoices, ledger and tax",
        config=config,
    )
    cdk.Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True), ServerlessChecks(app)
    )
    return app


def main() -> None:
    build_app().synth()


if __name__ == "__main__":
    main()
