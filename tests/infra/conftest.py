"""The CDK app synthesized once per test session, without building the layer (no network, no pip).

Bundling is skipped with CDK's standard context switch `"aws:cdk:bundling-stacks": []`
(`infra.app.SKIP_BUNDLING`); everything else is the app exactly as `cdk synth` builds it, cdk-nag included.
"""

from __future__ import annotations

import os

import pytest

from tests.infra.support import Synthesized

# Read by the jsii node process when it starts (first aws_cdk import): Node 20 is past its end of life
# and jsii prints a banner on every start otherwise.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    from aws_cdk.assertions import Template

    from infra.app import SKIP_BUNDLING, build_app
    from infra.stack import BillingStack

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = build_app(SKIP_BUNDLING, outdir=str(outdir))
    app.synth()  # runs the cdk-nag validation plugins; raises on any unacknowledged finding
    (stack,) = (child for child in app.node.children if isinstance(child, BillingStack))
    assertions = Template.from_stack(stack)
    return Synthesized(outdir=outdir, template=assertions.to_json(), assertions=assertions)
