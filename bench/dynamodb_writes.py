"""What one DynamoDB write request writes, read from its parameters: for each item, the table, the
partition key, the write units it costs and the global secondary indexes it adds an entry to or
removes one from.

Table schemas come from infra/template.json (the same source the local stack creates its tables from),
so a new table or index is counted without a change here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.local.resources import TABLE_TYPE, resources_of_type

WRITE_OPERATIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
# A transactional write costs two write units per item in AWS.
TRANSACTION_UNITS = 2
_CLAUSE = re.compile(r"(?<![\w:#])(SET|REMOVE|ADD|DELETE)(?![\w])", re.IGNORECASE)


@dataclass(frozen=True)
class TableSchema:
    name: str  # the template's logical id, e.g. DeliveriesTable
    partition_key: str
    # GSI name -> the attributes an item needs, beyond the base table's keys, to have an entry in it.
    index_attributes: Mapping[str, frozenset[str]]


@dataclass(frozen=True)
class ItemWrite:
    table: str
    partition_key: str
    units: int
    indexes: tuple[str, ...]  # GSIs whose key attributes this write sets or removes


class Schemas:
    """Table schemas of the template, found by table name (`{prefix}-{LogicalId}` locally)."""

    def __init__(self, template: Mapping[str, Any]) -> None:
        self._schemas: dict[str, TableSchema] = {}
        for logical_id, resource in resources_of_type(template, TABLE_TYPE).items():
            properties = resource.get("Properties", {})
            keys = {k["AttributeName"]: k["KeyType"] for k in properties.get("KeySchema", [])}
            partition = next((name for name, kind in keys.items() if kind == "HASH"), "pk")
            indexes = {
                index["IndexName"]: frozenset(k["AttributeName"] for k in index.get("KeySchema", [])) - set(keys)
                for index in properties.get("GlobalSecondaryIndexes", [])
            }
            self._schemas[logical_id] = TableSchema(logical_id, partition, indexes)
        self._by_name: dict[str, TableSchema] = {}

    def for_table(self, table_name: str) -> TableSchema:
        if table_name not in self._by_name:
            found = next(
                (s for lid, s in self._schemas.items() if table_name == lid or table_name.endswith(f"-{lid}")),
                TableSchema(table_name, "pk", {}),
            )
            self._by_name[table_name] = found
        return self._by_name[table_name]


def item_writes(operation: str, params: Mapping[str, Any], schemas: Schemas) -> list[ItemWrite]:
    """The items a write request writes (empty for any other request)."""
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        return [_single(operation, params, schemas, units=1)]
    if operation == "BatchWriteItem":
        writes = []
        for table, requests in params.get("RequestItems", {}).items():
            for request in requests:
                if "PutRequest" in request:
                    writes.append(_single("PutItem", {"TableName": table, **request["PutRequest"]}, schemas, units=1))
                elif "DeleteRequest" in request:
                    writes.append(
                        _single("DeleteItem", {"TableName": table, **request["DeleteRequest"]}, schemas, units=1)
                    )
        return writes
    if operation == "TransactWriteItems":
        kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}
        return [
            _single(kinds[kind], body, schemas, units=TRANSACTION_UNITS)
            for entry in params.get("TransactItems", [])
            for kind, body in entry.items()
            if kind in kinds
        ]
    return []


def _single(operation: str, params: Mapping[str, Any], schemas: Schemas, *, units: int) -> ItemWrite:
    schema = schemas.for_table(str(params.get("TableName", "")))
    item = params.get("Item") if operation == "PutItem" else params.get("Key")
    item = item or {}
    value = item.get(schema.partition_key) or next(iter(item.values()), {"S": "?"})
    written = _written_attributes(operation, params, item)
    # DeleteItem's parameters do not say whether the item had index attributes: not counted.
    indexes = tuple(name for name, attributes in schema.index_attributes.items() if attributes & written)
    return ItemWrite(schema.name, str(next(iter(value.values()), "?")), units, indexes)


def _written_attributes(operation: str, params: Mapping[str, Any], item: Mapping[str, Any]) -> set[str]:
    if operation == "PutItem":
        return set(item)
    if operation != "UpdateItem":
        return set()
    written = set(params.get("AttributeUpdates", {}))
    expression = params.get("UpdateExpression")
    if expression:
        written |= updated_attributes(expression, params.get("ExpressionAttributeNames", {}))
    return written


def updated_attributes(expression: str, names: Mapping[str, str]) -> set[str]:
    """Top-level attributes an update expression sets, removes, adds to or deletes from."""
    attributes: set[str] = set()
    pieces = _CLAUSE.split(expression)
    for keyword, body in zip(pieces[1::2], pieces[2::2], strict=True):
        for action in _split_top_level(body):
            path = action.split("=", 1)[0] if keyword.upper() == "SET" else (action.split() or [""])[0]
            top = re.split(r"[.\[]", path.strip(), maxsplit=1)[0]
            if top:
                attributes.add(names.get(top, top))
    return attributes


def _split_top_level(body: str) -> list[str]:
    """Split on commas outside parentheses (`if_not_exists(a, :b)` is one operand)."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in body:
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current.append(char)
    parts.append("".join(current))
    return [p for p in (part.strip() for part in parts) if p]
