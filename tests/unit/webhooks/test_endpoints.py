"""Webhook endpoints (pure): the event-type filter, who receives what and from when, signing secrets and
their rotation, disabling and enabling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.webhooks.endpoints import (
    EVENT_TYPES,
    ROTATION_OVERLAP,
    WILDCARD,
    InvalidEventTypes,
    SigningSecret,
    WebhookEndpoint,
    event_types,
)
from billing.domain.webhooks.events import EventType, WebhookEvent

CREATED = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
LATER = CREATED + timedelta(days=3)
DAY = timedelta(hours=24)


# --- builders ----------------------------------------------------------------------------------------


def endpoint(
    *,
    types: tuple[str, ...] = (WILDCARD,),
    disabled: bool = False,
    reason: str | None = None,
    enabled_since: datetime = CREATED,
    secrets: tuple[SigningSecret, ...] | None = None,
) -> WebhookEndpoint:
    return WebhookEndpoint(
        id="we_1",
        url="https://hooks.example.com/billing",
        event_types=types,
        description=None,
        disabled=disabled,
        disabled_reason=reason,
        enabled_since=enabled_since,
        created_at=CREATED,
        updated_at=CREATED,
        secrets=(SigningSecret("ct-first", CREATED),) if secrets is None else secrets,
    )


def event(kind: EventType = EventType.INVOICE_PAID, created_at: datetime = LATER) -> WebhookEvent:
    return WebhookEvent(
        id="evt_1", type=kind, customer_id="cus_42", sequence=1, created_at=created_at, data={}
    )


def ciphertexts(secrets: tuple[SigningSecret, ...]) -> list[str]:
    return [secret.ciphertext for secret in secrets]


# --- event_types -------------------------------------------------------------------------------------


def test_the_wildcard_alone_selects_every_type() -> None:
    assert event_types(["*"]) == ("*",)
    assert event_types(["*", "*"]) == ("*",)


def test_named_types_are_kept_once_each_sorted() -> None:
    assert event_types(["invoice.paid", "payment.failed", "invoice.paid", "customer.access_changed"]) == (
        "customer.access_changed",
        "invoice.paid",
        "payment.failed",
    )


def test_every_event_type_can_be_named() -> None:
    assert event_types(list(EVENT_TYPES)) == tuple(sorted(EVENT_TYPES))
    assert set(EVENT_TYPES) == {kind.value for kind in EventType}


@given(st.lists(st.sampled_from(EVENT_TYPES), min_size=1))
def test_any_list_of_known_types_normalizes_to_its_sorted_set(values: list[str]) -> None:
    normalized = event_types(values)
    assert normalized == tuple(sorted(set(values)))
    assert event_types(list(normalized)) == normalized  # normalizing twice changes nothing


def test_an_empty_list_is_refused_pointing_at_the_wildcard() -> None:
    with pytest.raises(InvalidEventTypes, match=r'names no event type; use \["\*"\] for every type'):
        event_types([])


def test_unknown_types_are_refused_naming_them_and_the_known_ones() -> None:
    with pytest.raises(InvalidEventTypes) as refused:
        event_types(["invoice.paid", "invoice.payed", "Invoice.Paid", "invoice.payed"])
    message = str(refused.value)
    assert "unknown event types ['Invoice.Paid', 'invoice.payed']" in message
    assert "invoice.finalized" in message
    assert "subscription.updated" in message
    assert "(or * for all)" in message


@pytest.mark.parametrize(
    "values", [["*", "invoice.paid"], ["invoice.paid", "*"], ["*", "*", "usage.unbilled"]]
)
def test_the_wildcard_beside_other_types_is_refused(values: list[str]) -> None:
    with pytest.raises(InvalidEventTypes, match='"\\*" already selects every type: list it alone'):
        event_types(values)


def test_unknown_types_are_reported_before_a_misplaced_wildcard() -> None:
    with pytest.raises(InvalidEventTypes, match="unknown event types"):
        event_types(["*", "nope"])


def test_a_refused_filter_is_a_value_error() -> None:
    assert issubclass(InvalidEventTypes, ValueError)


# --- subscribes / should_deliver ---------------------------------------------------------------------


def test_the_wildcard_subscribes_to_every_type() -> None:
    assert all(endpoint().subscribes(kind) for kind in EventType)


def test_a_filter_subscribes_to_the_types_it_names_only() -> None:
    filtered = endpoint(types=("invoice.finalized", "invoice.paid"))
    assert filtered.subscribes(EventType.INVOICE_PAID)
    assert filtered.subscribes("invoice.finalized")
    assert not filtered.subscribes(EventType.INVOICE_PARTIALLY_PAID)
    assert not filtered.subscribes("invoice")


def test_an_enabled_subscribed_endpoint_receives_events_created_from_enabled_since_on() -> None:
    receiving = endpoint(enabled_since=LATER)
    assert receiving.should_deliver(event(created_at=LATER))
    assert receiving.should_deliver(event(created_at=LATER + timedelta(microseconds=1)))


def test_an_event_created_before_enabled_since_is_not_delivered() -> None:
    assert not endpoint(enabled_since=LATER).should_deliver(
        event(created_at=LATER - timedelta(microseconds=1))
    )


def test_a_disabled_endpoint_receives_nothing() -> None:
    assert not endpoint(disabled=True, reason="manual").should_deliver(event())


def test_an_endpoint_does_not_receive_a_type_it_does_not_subscribe_to() -> None:
    assert not endpoint(types=("invoice.finalized",)).should_deliver(event(EventType.INVOICE_PAID))
    assert endpoint(types=("invoice.finalized",)).should_deliver(event(EventType.INVOICE_FINALIZED))


def test_enabled_since_is_compared_as_an_instant_whatever_the_zones() -> None:
    in_tokyo = LATER.astimezone(timezone(timedelta(hours=9)))
    assert endpoint(enabled_since=in_tokyo).should_deliver(event(created_at=LATER))


# --- signing secrets and rotation --------------------------------------------------------------------


def test_a_new_endpoint_signs_with_its_one_secret_at_any_time() -> None:
    first = endpoint()
    assert first.signing_secrets(CREATED) == first.secrets
    assert first.signing_secrets(CREATED + timedelta(days=3650)) == first.secrets


def test_a_rotation_puts_the_new_secret_first_and_the_old_one_expiring_a_day_later() -> None:
    rotated = endpoint().rotated("ct-second", LATER)
    assert rotated.secrets == (
        SigningSecret("ct-second", LATER),
        SigningSecret("ct-first", CREATED, expires_at=LATER + ROTATION_OVERLAP),
    )
    assert ROTATION_OVERLAP == DAY
    assert rotated.updated_at == LATER
    assert rotated.enabled_since == CREATED


def test_both_secrets_sign_during_the_overlap_and_only_the_new_one_after() -> None:
    rotated = endpoint().rotated("ct-second", LATER)
    assert ciphertexts(rotated.signing_secrets(LATER)) == ["ct-second", "ct-first"]
    assert ciphertexts(rotated.signing_secrets(LATER + DAY - timedelta(microseconds=1))) == [
        "ct-second",
        "ct-first",
    ]
    assert ciphertexts(rotated.signing_secrets(LATER + DAY)) == ["ct-second"]
    assert ciphertexts(rotated.signing_secrets(LATER + DAY * 30)) == ["ct-second"]


def test_an_old_secret_expiring_sooner_keeps_its_sooner_expiry() -> None:
    soon = LATER + timedelta(hours=2)
    rotated = endpoint(secrets=(SigningSecret("ct-old", CREATED, expires_at=soon),)).rotated("ct-new", LATER)
    assert rotated.secrets[1] == SigningSecret("ct-old", CREATED, expires_at=soon)


def test_secrets_already_expired_at_the_rotation_are_dropped() -> None:
    secrets = (
        SigningSecret("ct-current", LATER - DAY * 2),
        SigningSecret("ct-expired", CREATED, expires_at=LATER - timedelta(seconds=1)),
        SigningSecret("ct-expiring-now", CREATED, expires_at=LATER),
    )
    rotated = endpoint(secrets=secrets).rotated("ct-new", LATER)
    assert ciphertexts(rotated.secrets) == ["ct-new", "ct-current"]


def test_rotating_again_inside_the_overlap_keeps_the_current_and_the_still_active_secrets() -> None:
    once = endpoint().rotated("ct-second", LATER)
    twice = once.rotated("ct-third", LATER + timedelta(hours=1))
    assert twice.secrets == (
        SigningSecret("ct-third", LATER + timedelta(hours=1)),
        SigningSecret("ct-second", LATER, expires_at=LATER + timedelta(hours=25)),
        SigningSecret("ct-first", CREATED, expires_at=LATER + DAY),  # its first expiry is sooner: kept
    )
    assert ciphertexts(twice.signing_secrets(LATER + DAY)) == ["ct-third", "ct-second"]
    assert ciphertexts(twice.signing_secrets(LATER + timedelta(hours=25))) == ["ct-third"]


def test_rotating_after_the_overlap_leaves_the_expired_secret_behind() -> None:
    once = endpoint().rotated("ct-second", LATER)
    twice = once.rotated("ct-third", LATER + DAY * 2)
    assert ciphertexts(twice.secrets) == ["ct-third", "ct-second"]


def test_a_rotation_changes_nothing_else() -> None:
    before = endpoint(types=("invoice.paid",))
    rotated = before.rotated("ct-second", LATER)
    assert (rotated.id, rotated.url, rotated.event_types, rotated.disabled, rotated.revision) == (
        before.id,
        before.url,
        before.event_types,
        before.disabled,
        before.revision,
    )


rotation_gaps = st.lists(
    st.integers(min_value=0, max_value=int(DAY.total_seconds()) * 3), min_size=1, max_size=12
)


def rotations(gaps: list[int]) -> tuple[WebhookEndpoint, list[datetime]]:
    current, times, now = endpoint(), [], CREATED
    for index, gap in enumerate(gaps):
        now += timedelta(seconds=gap)
        current = current.rotated(f"ct-{index}", now)
        times.append(now)
    return current, times


@given(gaps=rotation_gaps, probe=st.integers(min_value=-86400, max_value=86400 * 60))
def test_at_any_instant_at_least_one_secret_signs_and_the_newest_is_first(
    gaps: list[int], probe: int
) -> None:
    rotated, times = rotations(gaps)
    signing = rotated.signing_secrets(times[-1] + timedelta(seconds=probe))
    assert signing
    assert signing[0] == rotated.secrets[0] == SigningSecret(f"ct-{len(gaps) - 1}", times[-1])
    assert rotated.secrets[0].expires_at is None


@given(gaps=rotation_gaps)
def test_after_any_rotations_the_secrets_are_newest_first_and_none_outlives_the_overlap(
    gaps: list[int],
) -> None:
    rotated, times = rotations(gaps)
    last = times[-1]
    created = [secret.created_at for secret in rotated.secrets]
    assert created == sorted(created, reverse=True)
    for secret in rotated.secrets[1:]:
        assert secret.expires_at is not None
        assert secret.expires_at <= last + ROTATION_OVERLAP
        assert secret.expires_at > last  # the rotation dropped those no longer signing
    assert ciphertexts(rotated.signing_secrets(last + ROTATION_OVERLAP)) == [f"ct-{len(gaps) - 1}"]


@given(gaps=rotation_gaps)
def test_a_rotation_keeps_at_most_the_new_secret_and_those_still_signing(gaps: list[int]) -> None:
    current, now = endpoint(), CREATED
    for index, gap in enumerate(gaps):
        now += timedelta(seconds=gap)
        still_signing = current.signing_secrets(now)
        current = current.rotated(f"ct-{index}", now)
        assert len(current.secrets) == 1 + len(still_signing)
        assert ciphertexts(current.secrets[1:]) == ciphertexts(still_signing)


# --- disable / enable --------------------------------------------------------------------------------


def test_disabling_records_the_reason_and_the_time() -> None:
    disabled = endpoint().disable("the endpoint answered 410 Gone", LATER)
    assert (disabled.disabled, disabled.disabled_reason, disabled.updated_at) == (
        True,
        "the endpoint answered 410 Gone",
        LATER,
    )
    assert disabled.enabled_since == CREATED


def test_disabling_a_disabled_endpoint_keeps_the_first_reason_and_time() -> None:
    once = endpoint().disable("the endpoint answered 410 Gone", LATER)
    twice = once.disable("disabled by the tenant", LATER + DAY)
    assert twice == once
    assert twice.disabled_reason == "the endpoint answered 410 Gone"
    assert twice.updated_at == LATER


def test_enabling_clears_the_reason_and_receives_only_what_is_created_from_then_on() -> None:
    back_at = LATER + DAY
    enabled = endpoint().disable("manual", LATER).enable(back_at)
    assert (enabled.disabled, enabled.disabled_reason) == (False, None)
    assert enabled.enabled_since == enabled.updated_at == back_at
    assert not enabled.should_deliver(event(created_at=LATER + timedelta(hours=1)))  # while it was disabled
    assert enabled.should_deliver(event(created_at=back_at))


def test_enabling_an_enabled_endpoint_changes_nothing() -> None:
    enabled = endpoint()
    assert enabled.enable(LATER) == enabled
    assert enabled.enable(LATER).enabled_since == CREATED


def test_disabling_and_enabling_keep_the_secrets() -> None:
    rotated = endpoint().rotated("ct-second", LATER)
    assert rotated.disable("manual", LATER).enable(LATER + DAY).secrets == rotated.secrets
