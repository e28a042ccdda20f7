"""Observability shared by every layer: one Logger, Tracer and Metrics per process.

Any module may import from here; nothing here imports handlers, services or adapters.
"""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "usage-billing"
METRICS_NAMESPACE = "UsageBilling"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE)

# A step that counted nothing (listing due periods, summarizing a run) is normal, not worth a warning.
warnings.filterwarnings("ignore", message="No application metrics to publish")
