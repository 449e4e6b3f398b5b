"""boto3 clients, built lazily once per process; SDK retries come from botocore's own config."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError

from chalicelib.settings import get_settings

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=64)
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _client(service: str) -> Any:
    settings = get_settings()
    session: Any = boto3.session.Session()
    return session.client(
        service, region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url, config=_CONFIG
    )


@lru_cache(maxsize=1)
def dynamodb() -> Any:
    return _client("dynamodb")


@lru_cache(maxsize=1)
def sqs() -> Any:
    return _client("sqs")


_on_reset: list[Callable[[], None]] = []


def on_reset(forget: Callable[[], None]) -> None:
    _on_reset.append(forget)


def reset_clients() -> None:
    """Forget cached clients and settings (tests point them at a fresh moto)."""
    dynamodb.cache_clear()
    sqs.cache_clear()
    get_settings.cache_clear()
    for forget in _on_reset:
        forget()


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_dynamo(v)) for k, v in values.items() if v is not None}


def to_values(values: dict[str, Any]) -> dict[str, Any]:
    """Expression attribute values: like to_item, but keeps None as NULL."""
    return {k: _serializer.serialize(_dynamo(v)) for k, v in values.items()}


def _dynamo(value: Any) -> Any:
    """DynamoDB numbers are Decimals; floats are not accepted by the serializer."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dynamo(v) for v in value]
    return value


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    """Decimals back to int/float so the rest of the code deals in plain numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def write_if(call: Callable[..., dict[str, Any]], **params: Any) -> dict[str, Any] | None:
    """Run a conditional write; its answer, or None when its condition did not hold."""
    try:
        return call(**params)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return None
        raise
