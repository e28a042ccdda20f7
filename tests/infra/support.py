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
