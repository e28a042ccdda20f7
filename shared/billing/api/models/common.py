"""Types every request and response model of the API shares: ids, instants, amounts, errors, pages.

Bounds are part of the types, so the OpenAPI document states them and the edge enforces them:
ids follow `billing.domain.ids`; instants are RFC 3339 with an offset, between 2000-01-01 and 2100-01-01;
numbers fit DynamoDB's range (38 significant digits, magnitude 1E-130 to 9.99E+125); lists are bounded.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Generic, TypeVar
from urllib.parse import unquote

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from billing.domain.errors import BillingError
from billing.domain.ids import ID_RULE, id_problem, is_key_id
from billing.domain.numbers import storable_problem
from billing.domain.rating.money import Currency
from billing.domain.rating.periods import BillingPeriod, format_instant
from billing.domain.usage_events import RFC3339_PATTERN, parse_timestamp

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50


class RequestModel(BaseModel):
    """A request body: unknown fields are refused (a misspelt field must fail, not default).

    `error_code` is the code of a 422 about this body; `field_codes` gives some top-level fields their own
    (a bad currency is `unknown_currency` wherever it appears). A domain rule checked by a field's type
    (`domain_rule`) answers with the domain's own code and message. `field_codes` keys are path prefixes
    ("charges[": any field inside a charge).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    error_code: ClassVar[str] = "invalid_request"
    field_codes: ClassVar[dict[str, str]] = {}
    union_tags: ClassVar[frozenset[str]] = frozenset()  # tags of tagged unions: not fields of the body


class ResponseModel(BaseModel):
    model_config = ConfigDict(frozen=True)


def domain_rule(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A validator running a domain check: its BillingError becomes a validation error that keeps the
    domain's code and message (the answer is then the same as if the domain had refused the request)."""

    def validate(value: Any) -> Any:
        try:
            check(value)
        except BillingError as problem:
            raise PydanticCustomError(
                "domain_rule", "{message}", {"code": problem.code, "message": problem.message}
            ) from None
        return value

    return validate


# ---- ids ---------------------------------------------------------------------------------------------


def _check_id(value: str) -> str:
    problem = id_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Id = Annotated[
    str,
    AfterValidator(_check_id),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            # Printable ASCII without / ? # % (the other conditions are checked by the server).
            "pattern": '^[!"$&-.0->@-~]+$',
            "description": f"An id: {ID_RULE}; never a card number, an e-mail address or a phone number.",
        }
    ),
]


def _check_key_id(value: str) -> str:
    if not is_key_id(value):
        raise ValueError(f"must be {ID_RULE}")
    return value


# An id the system made (an endpoint, a delivery, an invoice): the rule's characters, no personal-data
# test (a run of a hex digest's digits may pass the Luhn check; the id must still be usable).
SystemId = Annotated[
    str,
    AfterValidator(_check_key_id),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 128, "pattern": '^[!"$&-.0->@-~]+$'}),
]


def _decode_path_segment(value: Any) -> Any:
    # API Gateway (REST) hands the path over percent-encoded and decodes path parameters: so do we.
    return unquote(value, errors="strict") if isinstance(value, str) else value


PathId = Annotated[
    str,
    BeforeValidator(_decode_path_segment),
    WithJsonSchema({"type": "string", "minLength": 1, "description": "An id, percent-encoded in the path"}),
]


# ---- instants ----------------------------------------------------------------------------------------


def _invalid_instant(message: str) -> PydanticCustomError:
    return PydanticCustomError("domain_rule", "{message}", {"code": "invalid_timestamp", "message": message})


def _parse_instant(value: Any) -> datetime:
    if isinstance(value, datetime) and value.utcoffset() is not None:
        return value
    try:
        return parse_timestamp(value)
    except BillingError:
        raise _invalid_instant(
            "must be an RFC 3339 date-time with an offset, e.g. 2026-03-01T00:00:00Z"
        ) from None


def _in_range(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise _invalid_instant("must be between 2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z")
    return value


Instant = Annotated[
    datetime,
    BeforeValidator(_parse_instant),
    AfterValidator(_in_range),
    PlainSerializer(format_instant, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": RFC3339_PATTERN,
            "description": "RFC 3339 with an offset, 2000-01-01 to 2100-01-01, e.g. 2026-03-01T00:00:00Z",
        },
        mode="validation",
    ),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]


# ---- numbers -----------------------------------------------------------------------------------------


def _storable(value: Decimal) -> Decimal:
    problem = storable_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Quantity = Annotated[
    Decimal,
    Field(allow_inf_nan=False),
    AfterValidator(_storable),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number"},
                {"type": "string", "pattern": r"^[+-]?\d{1,38}(\.\d{1,38})?$", "maxLength": 78},
            ],
            "description": "A decimal number or decimal string: 38 significant digits at most.",
        }
    ),
]

# Prices and money amounts are decimal strings (a JSON number such as 0.1 is a binary float in most
# clients before it ever reaches us).
PriceText = Annotated[
    str,
    Field(
        pattern=r"^\d{1,38}(\.\d{1,38})?$",
        max_length=77,
        description='A non-negative decimal string, e.g. "0.00002"',
        examples=["49.00"],
    ),
]
MoneyText = Annotated[str, Field(description='An amount in major units, e.g. "12.34"', examples=["12.34"])]
CurrencyCode = Annotated[
    str,
    BeforeValidator(domain_rule(Currency.of)),
    WithJsonSchema({"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217 code, e.g. USD"}),
]


# ---- shared shapes -----------------------------------------------------------------------------------


class Period(ResponseModel):
    """A half-open interval of time [start, end)."""

    start: str = Field(description="RFC 3339, inclusive")
    end: str = Field(description="RFC 3339, exclusive")

    @classmethod
    def of(cls, period: BillingPeriod) -> Period:
        return cls(start=format_instant(period.start_utc), end=format_instant(period.end_utc))


class ErrorObject(ResponseModel):
    code: str = Field(description="A stable machine code, e.g. invalid_request")
    message: str = Field(description="A sentence for people")
    details: list[dict[str, Any]] = Field(default_factory=list)


class ErrorBody(ResponseModel):
    """Every error answer has this shape."""

    error: ErrorObject


T = TypeVar("T")


class Page(ResponseModel, Generic[T]):
    """One page of a list; pass `next_cursor` as `?cursor=` for the next one (null on the last page)."""

    data: list[T]
    next_cursor: str | None


PageSize = Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE, description=f"Items per page, 1 to {MAX_PAGE_SIZE}")]
Cursor = Annotated[str, Field(min_length=1, max_length=4096, description="next_cursor of the previous page")]
