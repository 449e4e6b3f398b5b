"""The local moto's Query from sorted groups answers exactly as moto's own Query, and reads only its page.

Runs in this process (moto's `mock_aws` with the patches of infra.local.moto_server installed for
the test only): each query is answered twice on the same data, from the groups and by moto's code.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from moto.dynamodb.models.table import Table

from infra.local.moto_server import STATS, moto_query, patched_moto

pytestmark = pytest.mark.integration

REGION = "us-east-1"

# Three tables covering the key shapes the fast path serves: a numeric and a string sort key, a
# hash-only table, sparse global indexes with and without a range key, and a local index.
TABLES: dict[str, dict[str, Any]] = {
    "numbers": {
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
            {"AttributeName": "due_at", "AttributeType": "N"},
            {"AttributeName": "status", "AttributeType": "S"},
            {"AttributeName": "size", "AttributeType": "N"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "due",
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "due_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": "status",
                "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
        "LocalSecondaryIndexes": [
            {
                "IndexName": "size",
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "size", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["payload"]},
            }
        ],
    },
    "strings": {
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "status", "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "status",
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "pk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    },
    "single": {
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "status", "AttributeType": "S"},
            {"AttributeName": "size", "AttributeType": "N"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "status",
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "size", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    },
}
# (hash attribute, sort attribute or None, sort type) per table and index.
KEYS: dict[str, dict[str | None, tuple[str, str | None, str]]] = {
    "numbers": {
        None: ("pk", "sk", "N"),
        "due": ("pk", "due_at", "N"),
        "status": ("status", None, ""),
        "size": ("pk", "size", "N"),
    },
    "strings": {None: ("pk", "sk", "S"), "status": ("status", "pk", "S")},
    "single": {None: ("pk", None, ""), "status": ("status", "size", "N")},
}
PARTITIONS = ["a", "b", "c"]
STATUSES = ["new", "sent"]
STRING_KEYS = ["a", "a1", "a2", "ab", "b", "b0", "ba", "c"]

numbers = st.sampled_from(["-2", "0", "1", "1.5", "2", "3", "5", "8", "13", "20"])
string_keys = st.sampled_from(STRING_KEYS)


@st.composite
def items(draw: st.DrawFn, table: str) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": {"S": draw(st.sampled_from(PARTITIONS))}}
    if table == "numbers":
        item["sk"] = {"N": draw(numbers)}
    elif table == "strings":
        item["sk"] = {"S": draw(string_keys)}
        item["pk"] = {"S": draw(string_keys)} if draw(st.booleans()) else item["pk"]
    else:
        item["pk"] = {"S": draw(string_keys)}
    if draw(st.booleans()):
        item["due_at"] = {"N": draw(numbers)}
    if draw(st.booleans()):
        item["size"] = {"N": draw(numbers)}
    if draw(st.booleans()):
        item["status"] = {"S": draw(st.sampled_from(STATUSES))}
    if draw(st.booleans()):
        item["payload"] = {"S": "x" * draw(st.integers(1, 300))}
    if draw(st.booleans()):
        item["n"] = {"N": draw(numbers)}
    return item


def _key(table: str, item: dict[str, Any]) -> dict[str, Any]:
    hash_attr, sort_attr, _ = KEYS[table][None]
    return {k: item[k] for k in (hash_attr, sort_attr) if k}


@st.composite
def writes(draw: st.DrawFn) -> dict[str, Any]:
    table = draw(st.sampled_from(sorted(TABLES)))
    item = draw(items(table))
    kind = draw(st.sampled_from(["put", "put", "put", "update", "remove", "delete", "transact"]))
    return {
        "kind": kind,
        "table": table,
        "item": item,
        "value": draw(numbers),
        "status": draw(st.sampled_from(STATUSES)),
    }


@st.composite
def queries(draw: st.DrawFn) -> dict[str, Any]:
    table = draw(st.sampled_from(sorted(TABLES)))
    index = draw(st.sampled_from(sorted(KEYS[table], key=str)))
    hash_attr, sort_attr, sort_type = KEYS[table][index]
    if hash_attr == "status":
        hash_value = {"S": draw(st.sampled_from(STATUSES))}
    elif table == "numbers":
        hash_value = {"S": draw(st.sampled_from(PARTITIONS))}
    else:
        hash_value = {"S": draw(st.sampled_from(STRING_KEYS + PARTITIONS))}
    names = {"#h": hash_attr}
    values: dict[str, Any] = {":h": hash_value}
    condition = "#h = :h"
    if sort_attr and draw(st.booleans()):
        names["#r"] = sort_attr
        draw_value = (lambda: {"N": draw(numbers)}) if sort_type == "N" else (lambda: {"S": draw(string_keys)})
        operators = ["=", "<", "<=", ">", ">=", "BETWEEN"] + (["begins_with"] if sort_type == "S" else [])
        operator = draw(st.sampled_from(operators))
        values[":r"] = draw_value()
        if operator == "BETWEEN":
            values[":r2"] = draw_value()
            condition += " AND #r BETWEEN :r AND :r2"
        elif operator == "begins_with":
            condition += " AND begins_with(#r, :r)"
        else:
            condition += f" AND #r {operator} :r"
    request: dict[str, Any] = {"TableName": table, "KeyConditionExpression": condition}
    if index:
        request["IndexName"] = index
    if draw(st.booleans()):
        request["Limit"] = draw(st.integers(1, 6))
    if draw(st.booleans()):
        request["ScanIndexForward"] = False
    if draw(st.booleans()):
        names["#n"] = "n"
        values[":f"] = {"N": draw(numbers)}
        request["FilterExpression"] = "#n > :f"
    if draw(st.integers(0, 4)) == 0:
        request["Select"] = "COUNT"
    elif draw(st.integers(0, 4)) == 0:
        request["ProjectionExpression"] = "#h, payload"
    request["ExpressionAttributeNames"] = names
    request["ExpressionAttributeValues"] = values
    return request


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


def _create_tables(dynamodb: Any) -> None:
    for name, definition in TABLES.items():
        dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **definition)


def _write(dynamodb: Any, write: dict[str, Any]) -> None:
    table, item = write["table"], write["item"]
    key = _key(table, item)
    try:
        if write["kind"] == "put":
            dynamodb.put_item(TableName=table, Item=item)
        elif write["kind"] == "update":
            dynamodb.update_item(
                TableName=table,
                Key=key,
                UpdateExpression="SET due_at = :d, #s = :s, #z = :d",
                ExpressionAttributeNames={"#s": "status", "#z": "size"},
                ExpressionAttributeValues={":d": {"N": write["value"]}, ":s": {"S": write["status"]}},
            )
        elif write["kind"] == "remove":
            dynamodb.update_item(
                TableName=table,
                Key=key,
                UpdateExpression="REMOVE due_at, #s",
                ExpressionAttributeNames={"#s": "status"},
            )
        elif write["kind"] == "delete":
            dynamodb.delete_item(TableName=table, Key=key)
        else:
            # A put and an update that fails its condition when the item exists: moto rolls the table back.
            dynamodb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": table, "Item": {**item, "n": {"N": "99"}}}},
                    {
                        "Update": {
                            "TableName": "numbers" if table != "numbers" else "strings",
                            "Key": {"pk": {"S": "a"}, "sk": {"N": "1"} if table != "numbers" else {"S": "a"}},
                            "UpdateExpression": "SET n = :n",
                            "ConditionExpression": "attribute_not_exists(pk)",
                            "ExpressionAttributeValues": {":n": {"N": write["value"]}},
                        }
                    },
                ]
            )
    except ClientError:
        pass


def _answer(dynamodb: Any, request: dict[str, Any]) -> dict[str, Any]:
    try:
        response = dynamodb.query(**request)
    except ClientError as exc:
        return {"error": exc.response["Error"]}
    response.pop("ResponseMetadata", None)
    return dict(response)


def _compare(dynamodb: Any, request: dict[str, Any]) -> dict[str, Any]:
    STATS.reset()
    fast = _answer(dynamodb, request)
    assert STATS.fallback == 0, request  # every query here is one the fast path covers
    with moto_query():
        expected = _answer(dynamodb, request)
    assert fast == expected, request
    return fast


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(steps=st.lists(st.one_of(writes(), writes(), queries()), min_size=5, max_size=45), start=st.data())
def test_query_answers_as_moto_does_on_random_data(steps: list[dict[str, Any]], start: st.DataObject) -> None:
    fast_queries = 0
    with mock_aws(), patched_moto():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        _create_tables(dynamodb)
        for step in steps:
            if "kind" in step:
                _write(dynamodb, step)
                continue
            # Every page, following LastEvaluatedKey; and once from the key of a stored item.
            request = dict(step)
            for _ in range(6):
                answer = _compare(dynamodb, request)
                fast_queries += STATS.fast
                if "LastEvaluatedKey" not in answer:
                    break
                request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
            stored = dynamodb.scan(TableName=step["TableName"])["Items"]
            if stored:
                item = start.draw(st.sampled_from(stored))
                index = step.get("IndexName")
                hash_attr, sort_attr, _ = KEYS[step["TableName"]][index]
                key_attrs = {*_key(step["TableName"], item), hash_attr, *([sort_attr] if sort_attr else [])}
                if key_attrs <= set(item):
                    _compare(dynamodb, {**step, "ExclusiveStartKey": {k: item[k] for k in key_attrs}})
    assert fast_queries or not any("KeyConditionExpression" in s for s in steps)


def test_query_answers_as_moto_does_on_every_small_query() -> None:
    """Every sort key condition, Limit, direction and start key on one small partition (with ties)."""
    due_at = ["3", "1", None, "3", "5", None, "1", "8"]
    with mock_aws(), patched_moto():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        _create_tables(dynamodb)
        for partition in ("a", "b"):
            for sk, due in enumerate(due_at):
                item = {"pk": {"S": partition}, "sk": {"N": str(sk)}, "n": {"N": str(sk % 3)}}
                if due is not None:
                    item["due_at"] = {"N": due}
                dynamodb.put_item(TableName="numbers", Item=item)
        start_items = [("a", 0, "3"), ("a", 3, "3"), ("a", 6, "1"), ("b", 4, "5")]
        for index, sort_attr in ((None, "sk"), ("due", "due_at")):
            conditions: list[tuple[str, dict[str, Any]]] = [("", {})]
            for operator in ("=", "<", "<=", ">", ">="):
                for value in ("-1", "0", "3", "4.5", "7", "9"):
                    conditions.append((f" AND #r {operator} :r", {":r": {"N": value}}))
            for low, high in (("0", "3"), ("2", "6"), ("5", "2"), ("7", "7")):
                conditions.append((" AND #r BETWEEN :r AND :s", {":r": {"N": low}, ":s": {"N": high}}))
            for condition, values in conditions:
                request: dict[str, Any] = {
                    "TableName": "numbers",
                    "KeyConditionExpression": "pk = :p" + condition,
                    "ExpressionAttributeValues": {":p": {"S": "a"}, **values},
                    "FilterExpression": "n <> :n",
                }
                request["ExpressionAttributeValues"][":n"] = {"N": "1"}
                if condition:
                    request["ExpressionAttributeNames"] = {"#r": sort_attr}
                if index:
                    request["IndexName"] = index
                for limit in (None, 1, 2, 3):
                    for forward in (True, False):
                        for start in (None, *start_items):
                            page = {**request, "ScanIndexForward": forward}
                            if limit:
                                page["Limit"] = limit
                            if start:
                                page["ExclusiveStartKey"] = {"pk": {"S": start[0]}, "sk": {"N": str(start[1])}}
                                if index:
                                    page["ExclusiveStartKey"]["due_at"] = {"N": start[2]}
                            _compare(dynamodb, page)


def test_a_page_ends_by_size_as_moto_ends_it() -> None:
    """moto ends a page before an item that would take it past 1 MB, even one failing the condition."""
    with mock_aws(), patched_moto():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        _create_tables(dynamodb)
        for sk, size in enumerate((350_000, 350_000, 10, 350_000, 10)):
            item = {"pk": {"S": "a"}, "sk": {"N": str(sk)}, "payload": {"S": "x" * size}}
            dynamodb.put_item(TableName="numbers", Item=item)
        ended = {}
        for condition in ("sk < :r", "sk <= :r", "sk >= :r"):
            for value in ("0", "1", "2", "3", "4"):
                for forward in (True, False):
                    answer = _compare(
                        dynamodb,
                        {
                            "TableName": "numbers",
                            "KeyConditionExpression": f"pk = :p AND {condition}",
                            "ExpressionAttributeValues": {":p": {"S": "a"}, ":r": {"N": value}},
                            "ScanIndexForward": forward,
                            "Select": "COUNT",
                        },
                    )
                    ended[(condition, value, forward)] = answer.get("LastEvaluatedKey")
        # sk < 2: items 0 and 1 (700 kB) match; 2 does not, and 3 (350 kB more) ends the page.
        assert ended[("sk < :r", "2", True)] == {"pk": {"S": "a"}, "sk": {"N": "1"}}


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws(), patched_moto():
        client = boto3.client("dynamodb", region_name=REGION)
        definition = {k: v for k, v in TABLES["numbers"].items() if k != "LocalSecondaryIndexes"}
        definition["AttributeDefinitions"] = [
            a for a in definition["AttributeDefinitions"] if a["AttributeName"] != "size"
        ]
        client.create_table(TableName="deliveries", BillingMode="PAY_PER_REQUEST", **definition)
        yield client


def _fill(dynamodb: Any, partition: str, count: int) -> None:
    """`count` items in `partition`, every other one due (the sparse `due` index holds half)."""
    for start in range(0, count, 25):
        requests = []
        for sk in range(start, min(count, start + 25)):
            item = {"pk": {"S": partition}, "sk": {"N": str(sk)}}
            if sk % 2 == 0:
                item["due_at"] = {"N": str(count - sk)}
            requests.append({"PutRequest": {"Item": item}})
        dynamodb.batch_write_item(RequestItems={"deliveries": requests})


def _page_costs(dynamodb: Any) -> dict[str, tuple[int, int, int]]:
    """(items returned, items visited, sort keys probed) of a page of 10, per access pattern."""
    pages: dict[str, dict[str, Any]] = {
        "partition page": {
            "KeyConditionExpression": "pk = :p",
            "ExclusiveStartKey": {"pk": {"S": "big"}, "sk": {"N": "50"}},
        },
        "partition range": {"KeyConditionExpression": "pk = :p AND sk BETWEEN :lo AND :hi"},
        "due index": {"IndexName": "due", "KeyConditionExpression": "pk = :p AND due_at <= :hi"},
        "due index, newest first": {
            "IndexName": "due",
            "KeyConditionExpression": "pk = :p AND due_at <= :hi",
            "ScanIndexForward": False,
        },
    }
    costs = {}
    for name, page in pages.items():
        values = {":p": {"S": "big"}}
        for placeholder, value in ((":lo", "20"), (":hi", "60")):
            if placeholder in page["KeyConditionExpression"]:
                values[placeholder] = {"N": value}
        STATS.reset()
        answer = dynamodb.query(TableName="deliveries", Limit=10, ExpressionAttributeValues=values, **page)
        assert STATS.fast == 1 and STATS.fallback == 0
        costs[name] = (answer["Count"], STATS.visited, STATS.probes)
    return costs


def test_a_page_costs_the_same_however_large_the_partition(dynamodb: Any) -> None:
    _fill(dynamodb, "other", 300)  # another partition, which no page should read
    _fill(dynamodb, "big", 100)
    small = _page_costs(dynamodb)
    _fill(dynamodb, "big", 3000)
    large = _page_costs(dynamodb)

    for name, (returned, visited, probes) in large.items():
        assert returned == 10
        assert visited == small[name][1] <= 11, name  # the page and the one after it, whatever the size
        assert probes <= 4 * (3000).bit_length(), name  # binary searches: logarithmic

    # moto's own Query walks every item of the table for each of these pages.
    walked: list[int] = []
    all_items = Table.all_items

    def counting(self: Table) -> list[Any]:
        found = all_items(self)
        walked.append(len(found))
        return found

    with moto_query(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(Table, "all_items", counting)
        answer = dynamodb.query(
            TableName="deliveries",
            IndexName="due",
            Limit=10,
            KeyConditionExpression="pk = :p AND due_at <= :hi",
            ExpressionAttributeValues={":p": {"S": "big"}, ":hi": {"N": "60"}},
        )
    assert answer["Count"] == 10
    assert walked == [3300]


def test_paging_through_a_partition_reads_each_item_about_once(dynamodb: Any) -> None:
    _fill(dynamodb, "big", 1000)
    STATS.reset()
    request: dict[str, Any] = {
        "TableName": "deliveries",
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": "big"}},
        "Limit": 50,
    }
    seen = 0
    pages = 0
    while True:
        answer = dynamodb.query(**request)
        seen += answer["Count"]
        pages += 1
        if "LastEvaluatedKey" not in answer:
            break
        request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
    assert seen == 1000 and STATS.fallback == 0
    assert STATS.visited <= seen + pages  # moto's own: every page walks and sorts the whole table


def test_writes_keep_the_groups_in_step_with_the_table(dynamodb: Any) -> None:
    _fill(dynamodb, "big", 40)
    due = {
        "TableName": "deliveries",
        "IndexName": "due",
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": "big"}},
    }
    before = [i["sk"]["N"] for i in dynamodb.query(**due)["Items"]]
    dynamodb.update_item(
        TableName="deliveries",
        Key={"pk": {"S": "big"}, "sk": {"N": "1"}},
        UpdateExpression="SET due_at = :d",
        ExpressionAttributeValues={":d": {"N": "0"}},
    )
    dynamodb.update_item(
        TableName="deliveries", Key={"pk": {"S": "big"}, "sk": {"N": "0"}}, UpdateExpression="REMOVE due_at"
    )
    dynamodb.update_item(
        TableName="deliveries",
        Key={"pk": {"S": "big"}, "sk": {"N": "2"}},
        UpdateExpression="ADD due_at :d",
        ExpressionAttributeValues={":d": {"N": "100"}},
    )
    dynamodb.delete_item(TableName="deliveries", Key={"pk": {"S": "big"}, "sk": {"N": "4"}})
    dynamodb.execute_statement(Statement="INSERT INTO deliveries VALUE {'pk': 'big', 'sk': 99, 'due_at': 1}")
    STATS.reset()
    after = [i["sk"]["N"] for i in dynamodb.query(**due)["Items"]]
    with moto_query():
        expected = [i["sk"]["N"] for i in dynamodb.query(**due)["Items"]]
    assert after == expected
    assert after[:2] == ["1", "99"] and after[-1] == "2" and "0" not in after and "4" not in after
    assert len(after) == len(before) and STATS.fast == 1 and STATS.stale == 0
