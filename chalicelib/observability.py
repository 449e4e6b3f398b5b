"""Logger and metrics, created once and shared (Powertools)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="bulk-campaign-api")
metrics = Metrics(namespace="BulkCampaign", service="bulk-campaign-api")
