"""What the infra tests share: the synthesized stack and lookups into its template."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Synthesized:
    outdir: Path
    template: dict[str, Any]  # the synthesized CloudFormation template, as plain JSON
    assertions: Any  # aws_cdk.assertions.Template of the same stack

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.template["Resources"].items()
            if resource["Type"] == resource_type
        }

    def resource(self, logical_id: str) -> dict[str, Any]:
        return self.template["Resources"][logical_id]

    def data_key_id(self) -> str:
        """The data key's logical id: the one KMS key of the stack that is not a key of its own
        (`billing.resources.KEYS`, which keep their specs' logical ids)."""
        from billing import resources

        (key_id,) = set(self.resources("AWS::KMS::Key")) - {spec.logical_id for spec in resources.KEYS}
        return key_id
