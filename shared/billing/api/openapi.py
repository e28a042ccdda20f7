"""The OpenAPI 3.1 document, generated from the routes and their models, and the page that renders it.

Powertools generates the paths, parameters, bodies and responses from the route signatures and their
declared `responses`; this module adds what a signature cannot carry: the request body of
`POST /v1/events` (validated event by event, so not one model), the bearer scheme, and the tags. The
docs page inlines the Swagger UI assets installed with Powertools, so it works without the internet.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.compat import model_json
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, Server, Tag
from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html
from pydantic.json_schema import models_json_schema

from billing.api.edge import BEARER
from billing.api.models.events import (
    CLOUDEVENTS_BATCH,
    CLOUDEVENTS_SINGLE,
    MAX_EVENTS_PER_REQUEST,
    CloudEventIn,
    UsageEventBatchIn,
    UsageEventIn,
)

TITLE = "Usage billing API"
VERSION = "1"
DESCRIPTION = (
    "Usage events in, rated invoices out: meters, customers, plans and subscriptions; billing runs that "
    "close periods into taxed invoices booked in a hash-chained ledger; payments.\n\n"
    "Authenticate with `Authorization: Bearer <api key>`. A key has the `ingest` scope (POST /v1/events "
    "only) or the `admin` scope (everything); each operation names the scope it needs. Any POST or PATCH "
    "takes an `Idempotency-Key` header: the same key with the same request replays the first response "
    "byte for byte, with another request it answers 422. Every error has the shape "
    '`{"error": {"code", "message", "details"}}`.'
)
TAGS: list[Tag | str] = [
    Tag(name="Usage events", description="Send usage; see what became of it"),
    Tag(name="Meters", description="Which events count, and how"),
    Tag(name="Customers", description="Who is billed, where they are taxed"),
    Tag(name="Plans", description="Versioned price lists"),
    Tag(name="Subscriptions", description="A customer on a plan over time"),
    Tag(name="Usage", description="The open period so far"),
    Tag(name="Billing runs", description="Closing periods into invoices"),
    Tag(name="Invoices", description="Finalized invoices"),
    Tag(name="Payments", description="Payments received outside the gateways"),
    Tag(name="Ledger", description="Journal entries and balances"),
]
SCHEMA_REF = "#/components/schemas/{model}"
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a retry safe: the same key with the same request replays the first answer byte for "
    "byte (with `Idempotent-Replayed: true`), the same key with another request answers 422; keys are kept "
    "24 hours per tenant",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
}
# Powertools' own validation-error schemas: this API answers every error in its own shape instead.
_UNUSED = ("HTTPValidationError", "ValidationError", "ResponseValidationError")


def build_document(app: APIGatewayRestResolver) -> dict[str, Any]:
    schema = app.get_openapi_schema(
        title=TITLE,
        version=VERSION,
        openapi_version="3.1.0",
        description=DESCRIPTION,
        tags=TAGS,
        # Relative to where the document is served (<base>/v1/openapi.json): the API's base URL, with or
        # without a stage prefix.
        servers=[Server(url="../", description="This API")],
        security_schemes={
            BEARER: HTTPBearer(
                scheme="bearer",
                description="An API key of your tenant (`bk_admin_…` or `bk_ingest_…`); the scope an "
                "operation needs is the role of its security requirement",
            )
        },
    )
    document: dict[str, Any] = json.loads(model_json(schema, by_alias=True, exclude_none=True))
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in _UNUSED:
        schemas.pop(name, None)
    _, definitions = models_json_schema(
        [(UsageEventIn, "validation"), (UsageEventBatchIn, "validation"), (CloudEventIn, "validation")],
        ref_template=SCHEMA_REF,
    )
    schemas.update(definitions.get("$defs", {}))
    components["requestBodies"] = {"UsageEvents": _events_request_body()}
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            if method in ("post", "patch"):
                operation.setdefault("parameters", []).append(IDEMPOTENCY_KEY)
    return document


def _events_request_body() -> dict[str, Any]:
    event, batch, cloudevent = (
        SCHEMA_REF.format(model=model.__name__) for model in (UsageEventIn, UsageEventBatchIn, CloudEventIn)
    )
    return {
        "required": True,
        "description": f"One event, or a batch of up to {MAX_EVENTS_PER_REQUEST} events and 1 MiB; or "
        "CloudEvents 1.0 (structured, or a batch array).",
        "content": {
            "application/json": {"schema": {"oneOf": [{"$ref": event}, {"$ref": batch}]}},
            CLOUDEVENTS_SINGLE: {"schema": {"$ref": cloudevent}},
            CLOUDEVENTS_BATCH: {
                "schema": {
                    "type": "array",
                    "items": {"$ref": cloudevent},
                    "minItems": 1,
                    "maxItems": MAX_EVENTS_PER_REQUEST,
                }
            },
        },
    }


def document_text(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


@cache
def _swagger_assets() -> tuple[str, str]:
    folder = files("aws_lambda_powertools.event_handler.openapi").joinpath("swagger_ui")
    return (
        folder.joinpath("swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        folder.joinpath("swagger-ui.min.css").read_text(encoding="utf-8"),
    )


def docs_page(document: dict[str, Any]) -> str:
    """A self-contained page (no request leaves it) rendering the document with Swagger UI."""
    # The page lives at <base>/docs: the API is at "./" from there.
    shown = {**document, "servers": [{"url": "./", "description": "This API"}]}
    # "</" inside a <script> would end it: JSON allows "<\/" for the same text.
    spec = document_text(shown).replace("</", "<\\/")
    script, style = _swagger_assets()
    html = generate_swagger_html(spec, script, style, "", None, persist_authorization=False)
    return html.replace("<title>Swagger UI</title>", f"<title>{TITLE}</title>", 1)
