"""Classifying boto3 errors: which ones are worth retrying."""

from __future__ import annotations

from botocore.exceptions import ClientError, ConnectionError, EndpointConnectionError, ReadTimeoutError

TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "RequestThrottled",
        "TransactionInProgressException",
        # An item being written by a transaction at that moment: the same call a moment later goes through.
        "TransactionConflictException",
        "AWS.SimpleQueueService.ServiceUnavailable",
        "KMSThrottlingException",
    }
)


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, EndpointConnectionError | ConnectionError | ReadTimeoutError):
        return True
    return error_code(exc) in TRANSIENT_CODES
