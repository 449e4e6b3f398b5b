"""boto3 clients, built lazily once per process; SDK retries come from botocore's own config."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError

from chalicelib.once import made_once
from chalicelib.settings import get_settings

# A dispatch invocation sends 50 at once (the local stack runs several invocations in one process): a
# pool smaller than the threads using it closes and reopens connections on every call.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=256)
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _client(service: str) -> Any:
    settings = get_settings()
    session: Any = boto3.session.Session()
    return session.client(
        service, region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url, config=_CONFIG
    )


@made_once(1)
def dynamodb() -> Any:
    client = _client("dynamodb")
    for operation in _READS_AS_SENT:
        client.meta.events.register(f"before-parse.dynamodb.{operation}", _items_as_sent)
    return client


# DynamoDB answers in JSON what botocore's parser makes of it (attribute values as {"S": ...}, numbers as
# strings), but for binary values, which it decodes from base64. The parser walks every value of every item
# against the API model: paging list items, that walk took a sixth of the release's CPU (py-spy, decision 50).
# Answers of these reads are taken as sent when they hold no binary value ("B", "BS"; the service stores none).
_READS_AS_SENT = ("Query", "GetItem", "BatchGetItem", "Scan")
_BINARY = (b'"B"', b'"BS"')


def _items_as_sent(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    body = response_dict.get("body")
    if response_dict.get("status_code") != 200 or not isinstance(body, bytes) or any(b in body for b in _BINARY):
        return
    customized_response_dict.update(json.loads(body or b"{}"))
    response_dict["body"] = b"{}"


@made_once(1)
def sqs() -> Any:
    return _client("sqs")


@made_once(16)
def client(service: str) -> Any:
    """Any other service's client (SES's identities and configuration sets, Secrets Manager, ...). Made once
    (an lru_cache let every thread that missed at once build its own: 200 sends of an HTTP action built
    their Secrets Manager clients at once, and the first request left 45 s after the start)."""
    return _client(service)


@made_once(16)
def single_attempt_client(service: str, timeout_seconds: float) -> Any:
    """A client that makes each call once: botocore's standard mode would retry a read timeout or a dropped
    connection, and a call that sends something (an email) must not be repeated blindly. `total_max_attempts`,
    not `max_attempts`, which botocore reads as retries (`max_attempts: 1` is two attempts)."""
    settings = get_settings()
    config = Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=min(timeout_seconds, 5.0),
        read_timeout=timeout_seconds,
        max_pool_connections=256,
    )
    session: Any = boto3.session.Session()
    return session.client(
        service, region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url, config=config
    )


_on_reset: list[Callable[[], None]] = []


def on_reset(forget: Callable[[], None]) -> None:
    _on_reset.append(forget)


def reset_clients() -> None:
    """Forget cached clients and settings (tests point them at a fresh moto)."""
    dynamodb.cache_clear()
    sqs.cache_clear()
    client.cache_clear()
    single_attempt_client.cache_clear()
    get_settings.cache_clear()
    for forget in _on_reset:
        forget()


# Integers up to 38 digits are kept as int (a DynamoDB number's precision).
_INT_LIMIT = Decimal(10) ** 38
# The smallest magnitude a DynamoDB number can have.
SMALLEST_NUMBER = 1e-130


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_dynamo(v)) for k, v in values.items() if v is not None}


def to_values(values: dict[str, Any]) -> dict[str, Any]:
    """Expression attribute values: like to_item, but keeps None as NULL."""
    return {k: _serializer.serialize(_dynamo(v)) for k, v in values.items()}


def _dynamo(value: Any) -> Any:
    """DynamoDB numbers are Decimals; floats are not accepted by the serializer. A float closer to 0 than
    DynamoDB stores (1e-130; a fuzzed `holdout_percent` of 8.8e-143 made a 500) is stored as 0."""
    if isinstance(value, float):
        return Decimal(0) if abs(value) < SMALLEST_NUMBER else Decimal(str(value))
    if isinstance(value, dict):
        return {k: _dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dynamo(v) for v in value]
    return value


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _value(v) for k, v in item.items()}


# Up to 28 digits (the decimal context's precision, which `_plain` computes in) an integer is read exactly as int.
_SHORT_INTEGER = re.compile(r"-?[0-9]{1,28}")


def _value(wire: dict[str, Any]) -> Any:
    """An attribute value as plain Python: what `_plain` makes of TypeDeserializer's answer, without the
    Decimal round trip for what most items hold (strings, integers, maps, lists)."""
    if len(wire) == 1:
        ((kind, value),) = wire.items()
        if kind == "S":
            return value
        if kind == "N" and _SHORT_INTEGER.fullmatch(value):
            return int(value)
        if kind == "M":
            return {k: _value(v) for k, v in value.items()}
        if kind == "L":
            return [_value(v) for v in value]
    return _plain(_deserializer.deserialize(wire))


def _plain(value: Any) -> Any:
    """Decimals back to int/float so the rest of the code deals in plain numbers. An integral value past 38
    digits came from a float (5e40 is stored as 5E+40): an int of it would be a number of 41 digits, which
    no request can carry, so a clone re-checking its definition refused it (a fuzzed 500)."""
    if isinstance(value, Decimal):
        if value == value.to_integral_value() and abs(value) < _INT_LIMIT:
            return int(value)
        return float(value)
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


# BatchGetItem takes at most 100 keys a call, BatchWriteItem 25 items; what they leave unprocessed
# (throttling) is asked again this many times, backing off.
BATCH_GET_KEYS = 100
BATCH_WRITE_ITEMS = 25
BATCH_TRIES = 10


def batch_get(
    table: str,
    wanted: list[dict[str, Any]],
    *,
    projection: str | None = None,
    names: dict[str, str] | None = None,
    consistent: bool = True,
) -> list[dict[str, Any]]:
    """The items of `wanted` (plain keys) that exist, as plain dicts, in no particular order."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(wanted), BATCH_GET_KEYS):
        ask: dict[str, Any] = {"Keys": [to_item(k) for k in wanted[start : start + BATCH_GET_KEYS]]}
        ask["ConsistentRead"] = consistent
        if projection:
            ask["ProjectionExpression"] = projection
        if names:
            ask["ExpressionAttributeNames"] = names
        request: dict[str, Any] = {table: ask}
        for attempt in range(BATCH_TRIES):
            answer = dynamodb().batch_get_item(RequestItems=request)
            found.extend(from_item(i) for i in answer["Responses"].get(table, []))
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                break
            time.sleep(0.05 * 2**attempt)
        else:
            raise RuntimeError(f"BatchGetItem left keys unprocessed after {BATCH_TRIES} tries")
    return found


def batch_put(table: str, items: list[dict[str, Any]]) -> None:
    """Put every item (plain dicts), unconditionally, 25 a call."""
    for start in range(0, len(items), BATCH_WRITE_ITEMS):
        request: dict[str, Any] = {
            table: [{"PutRequest": {"Item": to_item(i)}} for i in items[start : start + BATCH_WRITE_ITEMS]]
        }
        for attempt in range(BATCH_TRIES):
            request = dynamodb().batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
            if not request:
                break
            time.sleep(0.05 * 2**attempt)
        else:
            raise RuntimeError(f"BatchWriteItem left items unprocessed after {BATCH_TRIES} tries")


def query_all(params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every item a Query matches, page after page (raw attribute values)."""
    params = dict(params)
    while True:
        answer = dynamodb().query(**params)
        yield from answer.get("Items", [])
        if "LastEvaluatedKey" not in answer:
            return
        params["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def page_over_buckets(
    partition_keys: list[str], query: dict[str, Any], *, after: str | None, limit: int
) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
    """Items of several partitions (buckets), one after the other, each in key order.

    `query` is a Query's parameters whose key condition names the partition as `:pk`. Positions are
    "<bucket index>|<sort key>"; returns (position, item) pairs and where to continue, or None at the end.
    """
    bucket, _, after_sk = (after or "0|").partition("|")
    current = int(bucket)
    found: list[tuple[str, dict[str, Any]]] = []
    while current < len(partition_keys) and len(found) < limit:
        pk = partition_keys[current]
        params = {**query, "Limit": limit - len(found)}
        params["ExpressionAttributeValues"] = {**query.get("ExpressionAttributeValues", {}), ":pk": {"S": pk}}
        if after_sk:
            params["ExclusiveStartKey"] = {"pk": {"S": pk}, "sk": {"S": after_sk}}
        answer = dynamodb().query(**params)
        found.extend((f"{current}|{i['sk']['S']}", from_item(i)) for i in answer.get("Items", []))
        last = answer.get("LastEvaluatedKey")
        if last:
            after_sk = last["sk"]["S"]
        else:
            current, after_sk = current + 1, ""
    if current >= len(partition_keys):
        return found, None
    return found, f"{current}|{after_sk}"


def partition_page(table: str, pk: str, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a partition's items in key order after sort key `after`; the items and the last sort key
    read (None at the end)."""
    params: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": to_values({":pk": pk}),
        "Limit": limit,
        "ConsistentRead": True,
    }
    if after:
        params["ExclusiveStartKey"] = to_item({"pk": pk, "sk": after})
    answer = dynamodb().query(**params)
    last = answer.get("LastEvaluatedKey")
    return [from_item(item) for item in answer.get("Items", [])], (last["sk"]["S"] if last else None)
