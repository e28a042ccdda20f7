"""What one attempt to deliver a webhook gave: the receiver's status, or why there was none."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AttemptOutcome:
    """One POST to an endpoint, as recorded on the delivery (`{"at", "status_code", "error", "duration_ms"}`).

    `status_code` is None when no HTTP answer came (refused by the SSRF guard, DNS, connection, TLS,
    timeout); `error` then says why in a short sentence, and for an answer that is not a success it says
    what was wrong with it (a redirect is not followed). Never holds the response body, a secret or a
    personal detail.
    """

    status_code: int | None
    error: str | None
    duration_ms: int
    retry_after: str | None = None  # the answer's raw Retry-After header, if any
    refused: bool = False  # the SSRF guard refused every address: nothing was connected to

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
