"""The bench's counting rules: no stack, no network."""

from __future__ import annotations

import pytest

from bench.campaign_bench import parse_sizes
from bench.dynamodb_writes import Schemas, item_writes, updated_attributes
from bench.floor import bucket_count, delivery_pk
from bench.hot_keys import key_kind, peak_in_window
from bench.report import keep_marked_sections
from infra.local.resources import load_template

SCHEMAS = Schemas(load_template())
ACCOUNT, CAMPAIGN = "acc_0a1b2c3d4e5f60718293", "cmp_93827160f5e4d3c2b1a0"


def test_update_expression_names_every_clause_and_resolves_placeholders() -> None:
    expression = "SET #st = :s, n = if_not_exists(n, :zero) + :one, m.a[0] = :x REMOVE due_at ADD #c :d"
    names = {"#st": "state", "#c": "succeeded"}
    assert updated_attributes(expression, names) == {"state", "n", "m", "due_at", "succeeded"}


def test_values_named_like_keywords_are_not_clauses() -> None:
    assert updated_attributes("SET a = :set, b = :remove", {}) == {"a", "b"}


def test_an_update_setting_or_removing_a_gsi_key_is_one_index_write() -> None:
    key = {"pk": {"S": f"{ACCOUNT}#C#{CAMPAIGN}"}, "sk": {"S": "META"}}
    (start,) = item_writes(
        "UpdateItem", {"TableName": "x-MainTable", "Key": key, "UpdateExpression": "SET active = :a"}, SCHEMAS
    )
    (other,) = item_writes(
        "UpdateItem", {"TableName": "x-MainTable", "Key": key, "UpdateExpression": "SET b = :b"}, SCHEMAS
    )
    assert (start.table, start.indexes, other.indexes) == ("MainTable", ("active",), ())


def test_batch_and_transaction_items_are_counted_one_by_one() -> None:
    put = {"PutRequest": {"Item": {"pk": {"S": "p#1"}, "sk": {"S": "a"}, "due_at": {"N": "1"}}}}
    delete = {"DeleteRequest": {"Key": {"pk": {"S": "p#2"}, "sk": {"S": "b"}}}}
    batch = item_writes("BatchWriteItem", {"RequestItems": {"x-DeliveriesTable": [put, delete]}}, SCHEMAS)
    assert [(w.partition_key, w.units, w.indexes) for w in batch] == [("p#1", 1, ("due",)), ("p#2", 1, ())]
    transaction = {"TransactItems": [{"Put": {"TableName": "x-MainTable", "Item": {"pk": {"S": "k"}}}}]}
    assert [w.units for w in item_writes("TransactWriteItems", transaction, SCHEMAS)] == [2]


def test_key_kinds_strip_ids() -> None:
    assert key_kind(f"{ACCOUNT}#C#{CAMPAIGN}#3") == "<acc>#C#<cmp>#<n>"
    assert key_kind("KEY#" + "ab" * 32) == "KEY#<hash>"


def test_peak_counts_a_burst_across_a_second_boundary_whole() -> None:
    assert peak_in_window([0.0, 0.6, 0.9, 1.1, 1.2, 2.5]) == 4


def test_the_floor_spreads_a_campaign_over_a_bucket_per_150_per_second() -> None:
    keys = {delivery_pk(ACCOUNT, CAMPAIGN, f"+1202555{n:04d}", bucket_count(1000)) for n in range(1000)}
    assert bucket_count(1000) == 7
    assert {key_kind(k) for k in keys} == {"<acc>#C#<cmp>#<n>"} and len(keys) == 7


def test_sizes_come_comma_separated_or_repeated() -> None:
    assert parse_sizes(["10000,100_000", "5"]) == [10_000, 100_000, 5]
    with pytest.raises(Exception, match="positive"):
        parse_sizes(["0"])


def test_sections_other_benches_keep_in_the_page_survive_a_rewrite() -> None:
    previous = "# Benchmarks\n\nold\n\n<!-- pause-bench:begin -->\npause figures\n<!-- pause-bench:end -->\n"
    page = keep_marked_sections("# Benchmarks\n\nnew\n", previous)
    assert page == "# Benchmarks\n\nnew\n\n<!-- pause-bench:begin -->\npause figures\n<!-- pause-bench:end -->\n"


def test_the_busiest_second_counts_any_window_and_the_achieved_rate_spans_first_to_last() -> None:
    from bench.pacing_bench import achieved_rate, busiest_second

    assert busiest_second([0.0, 0.5, 0.99, 1.0, 1.2]) == 4  # [0.5, 1.5) holds 0.5, 0.99, 1.0, 1.2
    assert busiest_second([]) == 0
    assert achieved_rate([0.0, 1.0, 2.0, 3.0], 1.0) == 1.0
    assert achieved_rate([0.0, 0.0, 1.0, 1.0], 2.0) == 4 / 1.5
