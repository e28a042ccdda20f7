"""Every DynamoDB key of the system, in one place, under one convention.

Convention: an item that belongs to a tenant has a partition key that starts `T#<tenant>#`, followed by
the kind of item in upper case and its id (`T#acme#INVOICE#inv_…`); an item shared by every tenant
starts with its kind (`APIKEY#…`, `DUE#03`, `TAXPROVIDER#…`). Sort keys name the item within its
partition (`PROFILE`, `HEAD`, `ENTRY#000000000001`). `#` separates the parts: no id may contain it (ids
are checked at the edge), so no two items of different tenants or kinds can share a key, and a query on
a tenant's partition can never reach another tenant's items.

Billing table (pk, sk; index gsi1 on gsi1pk, gsi1sk):

  tenant           T#<t>                          TENANT
  API key          APIKEY#<sha256 of the key>     APIKEY         gsi1: T#<t>#APIKEYS / APIKEY#<key id>
  meter            T#<t>#METERS                   METER#<key>
  customer         T#<t>#CUSTOMER#<id>            PROFILE        gsi1: T#<t>#CUSTOMERS / CUSTOMER#<id>
  plan (latest)    T#<t>#PLAN#<id>                HEAD           gsi1: T#<t>#PLANS / PLAN#<id>
  plan version     T#<t>#PLAN#<id>                VERSION#<000001>
  subscription     T#<t>#SUBSCRIPTION#<id>        PROFILE
  invoice          T#<t>#INVOICE#<id>             INVOICE        gsi1: T#<t>#CUSTOMER#<c>#INVOICES /
                                                                       INVOICE#<period start>#<id>
  invoice audit    T#<t>#INVOICE#<id>             AUDIT
  payment          T#<t>#PAYMENT#<id>             PAYMENT
  journal entry    T#<t>#LEDGER#<customer>        ENTRY#<sequence, 12 digits>
  ledger head      T#<t>#LEDGER#<customer>        HEAD
  billing run      T#<t>#RUN#<id>                 RUN
  scheduled run    SCHEDULED#RUN#<id>             RUN
  due period       DUE#<shard, 2 digits>          <period end>#<t>#<subscription>
  tax breaker      TAXPROVIDER#<name>             BREAKER
  last-known-good  TAXPROVIDER#<name>             LKG#<seller>#<country>#<region>#<postal>#<code>#<B2B|B2C>
  outbox head      T#<t>#OUTBOX#<customer>        HEAD           (the customer's last webhook sequence)
  outbox event     T#<t>#OUTBOX#<customer>        EVENT#<sequence, 12 digits>   (entity outbox_event)
  event id claim   T#<t>#WHEVENT#<event id>       EVENT          (an event id is written once)
  endpoint         T#<t>#WEBHOOKS                 ENDPOINT#<id>
  delivery         T#<t>#WHDELIVERY#<id>          DELIVERY       gsi1: T#<t>#WEBHOOK#<endpoint>#DELIVERIES /
                                                                       DELIVERY#<created at>#<id>
  delivery lane    T#<t>#WHLANE#<endpoint>#<customer>  LANE      gsi1: T#<t>#WEBHOOK#<endpoint>#LANES /
                                                                       LANE#<customer>  (cursor, lease)

Events table (pk, sk; index by_time on pk, ts):

  usage event      T#<t>#C#<customer>#S<shard, 2 digits>     E#<event id>

Idempotency table: Powertools' own key (`id`).
"""

from __future__ import annotations

import hashlib

Key = dict[str, dict[str, str]]

GSI1 = "gsi1"
BY_TIME_INDEX = "by_time"
DUE_SHARDS = 8

# Sort keys and sort-key prefixes.
TENANT_SK = "TENANT"
APIKEY_SK = "APIKEY"
APIKEY_PREFIX = "APIKEY#"
PROFILE_SK = "PROFILE"
HEAD_SK = "HEAD"
METER_PREFIX = "METER#"
VERSION_PREFIX = "VERSION#"
CUSTOMER_PREFIX = "CUSTOMER#"
PLAN_PREFIX = "PLAN#"
INVOICE_SK = "INVOICE"
INVOICE_PREFIX = "INVOICE#"
AUDIT_SK = "AUDIT"
PAYMENT_SK = "PAYMENT"
ENTRY_PREFIX = "ENTRY#"
RUN_SK = "RUN"
BREAKER_SK = "BREAKER"
LAST_KNOWN_GOOD_PREFIX = "LKG#"
EVENT_PREFIX = "E#"
OUTBOX_EVENT_PREFIX = "EVENT#"
EVENT_CLAIM_SK = "EVENT"
ENDPOINT_PREFIX = "ENDPOINT#"
DELIVERY_SK = "DELIVERY"
DELIVERY_PREFIX = "DELIVERY#"
LANE_SK = "LANE"
LANE_PREFIX = "LANE#"


def key(pk: str, sk: str) -> Key:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def tenant_prefix(tenant_id: str) -> str:
    """What every partition key of a tenant's items starts with."""
    return f"T#{tenant_id}#"


# ---- tenants and API keys ------------------------------------------------------------------------------


def tenant_key(tenant_id: str) -> Key:
    return key(f"T#{tenant_id}", TENANT_SK)


def api_key_key(key_hash: str) -> Key:
    return key(APIKEY_PREFIX + key_hash, APIKEY_SK)


def api_keys_index(tenant_id: str) -> str:
    return f"T#{tenant_id}#APIKEYS"


# ---- catalog -------------------------------------------------------------------------------------------


def meters_partition(tenant_id: str) -> str:
    return f"T#{tenant_id}#METERS"


def meter_key(tenant_id: str, meter_key_: str) -> Key:
    return key(meters_partition(tenant_id), METER_PREFIX + meter_key_)


def customer_partition(tenant_id: str, customer_id: str) -> str:
    return f"T#{tenant_id}#CUSTOMER#{customer_id}"


def customer_key(tenant_id: str, customer_id: str) -> Key:
    return key(customer_partition(tenant_id, customer_id), PROFILE_SK)


def customers_index(tenant_id: str) -> str:
    return f"T#{tenant_id}#CUSTOMERS"


def plan_partition(tenant_id: str, plan_id: str) -> str:
    return f"T#{tenant_id}#PLAN#{plan_id}"


def plan_version_sort_key(version: int) -> str:
    return f"{VERSION_PREFIX}{version:06d}"


def plan_key(tenant_id: str, plan_id: str, version: int | None = None) -> Key:
    """The plan's head (its latest version) when `version` is None, else that version."""
    sort_key = HEAD_SK if version is None else plan_version_sort_key(version)
    return key(plan_partition(tenant_id, plan_id), sort_key)


def plans_index(tenant_id: str) -> str:
    return f"T#{tenant_id}#PLANS"


def subscription_key(tenant_id: str, subscription_id: str) -> Key:
    return key(f"T#{tenant_id}#SUBSCRIPTION#{subscription_id}", PROFILE_SK)


# ---- invoices, payments, ledger ------------------------------------------------------------------------


def invoice_partition(tenant_id: str, invoice_id: str) -> str:
    return f"T#{tenant_id}#INVOICE#{invoice_id}"


def invoice_key(tenant_id: str, invoice_id: str) -> Key:
    return key(invoice_partition(tenant_id, invoice_id), INVOICE_SK)


def invoice_audit_key(tenant_id: str, invoice_id: str) -> Key:
    return key(invoice_partition(tenant_id, invoice_id), AUDIT_SK)


def invoices_index(tenant_id: str, customer_id: str) -> str:
    return f"T#{tenant_id}#CUSTOMER#{customer_id}#INVOICES"


def invoices_index_sort_key(period_start: str, invoice_id: str) -> str:
    return f"{INVOICE_PREFIX}{period_start}#{invoice_id}"


def payment_key(tenant_id: str, payment_id: str) -> Key:
    return key(f"T#{tenant_id}#PAYMENT#{payment_id}", PAYMENT_SK)


def ledger_partition(tenant_id: str, customer_id: str) -> str:
    return f"T#{tenant_id}#LEDGER#{customer_id}"


def ledger_head_key(tenant_id: str, customer_id: str) -> Key:
    return key(ledger_partition(tenant_id, customer_id), HEAD_SK)


def entry_sort_key(sequence: int) -> str:
    return f"{ENTRY_PREFIX}{sequence:012d}"


# ---- billing runs and the due index --------------------------------------------------------------------


def run_key(tenant_id: str | None, run_id: str) -> Key:
    """A tenant's run, or a scheduled run over every tenant (`tenant_id` None)."""
    owner = f"T#{tenant_id}" if tenant_id else "SCHEDULED"
    return key(f"{owner}#RUN#{run_id}", RUN_SK)


def due_shard(tenant_id: str, subscription_id: str) -> int:
    digest = hashlib.sha256(f"{tenant_id}\x00{subscription_id}".encode()).digest()
    return digest[0] % DUE_SHARDS


def due_partition(shard: int) -> str:
    return f"DUE#{shard:02d}"


def due_key(tenant_id: str, subscription_id: str, period_end: str) -> Key:
    return key(
        due_partition(due_shard(tenant_id, subscription_id)), f"{period_end}#{tenant_id}#{subscription_id}"
    )


# ---- tax provider state ---------------------------------------------------------------------------------


def tax_provider_partition(provider: str) -> str:
    return f"TAXPROVIDER#{provider}"


# ---- outbox and webhooks -------------------------------------------------------------------------------


def outbox_partition(tenant_id: str, customer_id: str) -> str:
    return f"T#{tenant_id}#OUTBOX#{customer_id}"


def outbox_head_key(tenant_id: str, customer_id: str) -> Key:
    return key(outbox_partition(tenant_id, customer_id), HEAD_SK)


def outbox_event_sort_key(sequence: int) -> str:
    return f"{OUTBOX_EVENT_PREFIX}{sequence:012d}"


def outbox_event_key(tenant_id: str, customer_id: str, sequence: int) -> Key:
    return key(outbox_partition(tenant_id, customer_id), outbox_event_sort_key(sequence))


def event_claim_key(tenant_id: str, event_id: str) -> Key:
    return key(f"T#{tenant_id}#WHEVENT#{event_id}", EVENT_CLAIM_SK)


def endpoints_partition(tenant_id: str) -> str:
    return f"T#{tenant_id}#WEBHOOKS"


def endpoint_key(tenant_id: str, endpoint_id: str) -> Key:
    return key(endpoints_partition(tenant_id), ENDPOINT_PREFIX + endpoint_id)


def delivery_key(tenant_id: str, delivery_id: str) -> Key:
    return key(f"T#{tenant_id}#WHDELIVERY#{delivery_id}", DELIVERY_SK)


def deliveries_index(tenant_id: str, endpoint_id: str) -> str:
    return f"T#{tenant_id}#WEBHOOK#{endpoint_id}#DELIVERIES"


def deliveries_index_sort_key(created_at: str, delivery_id: str) -> str:
    return f"{DELIVERY_PREFIX}{created_at}#{delivery_id}"


def lane_key(tenant_id: str, endpoint_id: str, customer_id: str) -> Key:
    return key(f"T#{tenant_id}#WHLANE#{endpoint_id}#{customer_id}", LANE_SK)


def lanes_index(tenant_id: str, endpoint_id: str) -> str:
    return f"T#{tenant_id}#WEBHOOK#{endpoint_id}#LANES"


def lanes_index_sort_key(customer_id: str) -> str:
    return LANE_PREFIX + customer_id


# ---- events table ---------------------------------------------------------------------------------------


def event_partition(tenant_id: str, customer_id: str, shard: int) -> str:
    return f"T#{tenant_id}#C#{customer_id}#S{shard:02d}"


def event_key(tenant_id: str, customer_id: str, event_id: str, shard: int) -> Key:
    return key(event_partition(tenant_id, customer_id, shard), EVENT_PREFIX + event_id)
