"""The structured logger, created once and shared (Powertools)."""

from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(service="bulk-campaign-api")
