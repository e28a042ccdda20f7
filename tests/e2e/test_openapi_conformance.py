"""The served OpenAPI document, checked against the running local API with schemathesis.

Every operation of `GET /v1/openapi.json` is called with generated requests, valid and invalid (a
bounded number per operation, derandomized in CI): no answer may be a 5xx, every status code must be one
the document lists for the operation, and every body must conform to the schema documented for it, so
every error answers in the error shape.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import FIXED_ADMIN_KEY, RuntimeProcess, start_runtime

pytestmark = pytest.mark.e2e

EXAMPLES_PER_OPERATION = int(os.environ.get("BILLING_SCHEMATHESIS_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def conformance_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    # Throttling off (a generous bucket): schemathesis sends bursts, and 429 is not what is tested here.
    running = start_runtime(
        tmp_path_factory.mktemp("billing-local-openapi"),
        env={"BILLING_LOCAL_ADMIN_KEY": FIXED_ADMIN_KEY},
        args=["--schedule-interval", "0"],
    )
    yield running
    assert running.stop() == 0, running.output()


def conformance_failures(runtime: RuntimeProcess, mode: GenerationMode) -> list[str]:
    """Call every operation with generated requests of one mode; the failures, one line each."""
    schema = schemathesis.openapi.from_url(f"{runtime.api_url}/v1/openapi.json")
    headers = {"Authorization": f"Bearer {FIXED_ADMIN_KEY}"}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def conforms(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=runtime.api_url, headers=headers, checks=CHECKS, timeout=30)

        try:
            conforms()
        except Exception as failure:
            failures.append(f"{operation.label} ({mode.value}): {failure}"[:4000])
    return failures


@pytest.mark.parametrize(
    "mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda mode: mode.value
)
def test_every_answer_conforms_to_the_served_document(
    conformance_runtime: RuntimeProcess, mode: GenerationMode
) -> None:
    failures = conformance_failures(conformance_runtime, mode)

    assert not failures, "\n\n".join(failures)


def test_the_document_and_its_page_are_served_without_a_key(conformance_runtime: RuntimeProcess) -> None:
    document = requests.get(f"{conformance_runtime.api_url}/v1/openapi.json", timeout=10)
    page = requests.get(f"{conformance_runtime.api_url}/docs", timeout=10)

    assert document.status_code == 200
    assert document.json()["openapi"] == "3.1.0"
    assert document.json()["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document.json()["components"]["securitySchemes"]["bearer"]["description"],
    }
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    # The page carries its assets: it asks nothing of the internet.
    assert "https://" not in page.text.split("<script>", 1)[0]
    assert "SwaggerUIBundle" in page.text
    assert page.text == requests.get(f"{conformance_runtime.api_url}/docs", timeout=10).text
