"""Segment conditions, checked by property: operators and their opposites, missing fields, numbers of
either type, text case, and first-match order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.recipients import Destination, DestinationType, Recipient
from chalicelib.domain.segments import (
    MISSING,
    NO_SLOT,
    delivery_key,
    every_match,
    field_value,
    holds,
    matches,
    recipient_of_delivery,
    segment_for,
    slot_segment,
    slots_of,
    split_key,
    value_problem,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
scalars = st.one_of(
    st.text(max_size=8),
    st.integers(-1000, 1000),
    st.floats(-1000, 1000, allow_nan=False),
    st.booleans(),
)


def person(**attributes: Any) -> Recipient:
    return Recipient(
        id="r1",
        destinations=(Destination(DestinationType.PHONE, "+14155550001"), Destination(DestinationType.EMAIL, "a@b.co")),
        attributes=attributes,
        locale="pt-BR",
    )


def check(field: str, op: str, value: Any, recipient: Recipient) -> bool:
    return holds({"field": field, "op": op, "value": value}, recipient, NOW)


@given(value=scalars, wanted=scalars)
def test_each_operator_and_its_opposite_disagree_on_a_present_field(value: Any, wanted: Any) -> None:
    recipient = person(x=value)
    assert check("attributes.x", "eq", wanted, recipient) != check("attributes.x", "ne", wanted, recipient)
    assert check("attributes.x", "in", [wanted, "zz"], recipient) != check(
        "attributes.x", "not_in", [wanted, "zz"], recipient
    )
    assert check("attributes.x", "exists", None, recipient) and not check("attributes.x", "not_exists", None, recipient)


@given(value=st.one_of(st.integers(-100, 100), st.floats(-100, 100, allow_nan=False)), edge=st.integers(-100, 100))
def test_number_comparisons_are_complementary_and_ints_equal_floats(value: float, edge: int) -> None:
    recipient = person(n=value)
    assert check("attributes.n", "gt", edge, recipient) != check("attributes.n", "lte", edge, recipient)
    assert check("attributes.n", "lt", edge, recipient) != check("attributes.n", "gte", edge, recipient)
    assert check("attributes.n", "eq", float(edge), person(n=edge))


@given(text=st.text(max_size=10), wanted=scalars)
def test_numbers_never_compare_with_text(text: str, wanted: Any) -> None:
    for op in ("gt", "gte", "lt", "lte"):
        assert not check("attributes.t", op, 5, person(t=text))
    assert not check("attributes.t", "before", "2026-01-01", person(t=7))


@given(
    op=st.sampled_from(["eq", "ne", "in", "not_in", "contains", "starts_with", "gt", "before", "exists", "not_exists"])
)
def test_a_missing_field_matches_only_the_negative_operators(op: str) -> None:
    values: dict[str, Any] = {"exists": None, "not_exists": None, "in": ["a"], "not_in": ["a"], "gt": 1}
    value = values.get(op, "2026-01-01" if op == "before" else "a")
    assert check("attributes.nope", op, value, person()) == (op in ("ne", "not_in", "not_exists"))


def test_fields_text_dates_and_destinations() -> None:
    ann = person(city="São Paulo", tags=["vip", "beta"], signed_up="2026-10-01", last_seen="2026-11-25T10:00:00+00:00")
    assert field_value(ann, "destinations.email") == "a@b.co" and field_value(ann, "destinations.voice") is MISSING
    assert check("locale", "starts_with", "pt", ann) and check("attributes.city", "contains", "são", ann)
    assert check("attributes.tags", "contains", "vip", ann) and not check("attributes.tags", "contains", "vi", ann)
    assert check("attributes.signed_up", "before", "2026-10-02", ann)
    assert check("attributes.signed_up", "older_than_days", 30, ann) and not check(
        "attributes.last_seen", "older_than_days", 2, ann
    )
    assert check("attributes.last_seen", "after", (NOW - timedelta(days=2)).isoformat(), ann)


@given(flags=st.lists(st.booleans(), min_size=1, max_size=6))
def test_all_any_and_the_first_matching_segment(flags: list[bool]) -> None:
    recipient = person(**{f"f{i}": flag for i, flag in enumerate(flags)})
    conditions = [{"field": f"attributes.f{i}", "op": "eq", "value": True} for i in range(len(flags))]
    assert matches({"conditions": conditions, "match": "all"}, recipient, NOW) == all(flags)
    assert matches({"conditions": conditions, "match": "any"}, recipient, NOW) == any(flags)
    ordered = [{"name": f"s{i}", "conditions": [c]} for i, c in enumerate(conditions)]
    found = segment_for(ordered, recipient, NOW)
    expected = next((f"s{i}" for i, flag in enumerate(flags) if flag), None)
    assert (found["name"] if found else None) == expected


def test_values_are_checked_against_their_operator() -> None:
    assert value_problem("gt", "ten") == "gt compares numbers: give a number"
    assert value_problem("in", []) and value_problem("exists", 1) and value_problem("eq", None)
    assert value_problem("before", "yesterday") and value_problem("older_than_days", -1)
    assert value_problem("eq", True) is None and value_problem("in", ["a", 1]) is None


@given(flags=st.lists(st.booleans(), min_size=1, max_size=20))
def test_every_match_gives_each_matching_segment_once_in_order_and_first_match_its_first(flags: list[bool]) -> None:
    recipient = person(**{f"f{i}": flag for i, flag in enumerate(flags)})
    ordered: list[dict[str, Any]] = [
        {"name": f"s{i}", "conditions": [{"field": f"attributes.f{i}", "op": "eq", "value": True}]}
        for i in range(len(flags))
    ]
    matched = every_match(ordered, recipient, NOW)
    assert matched == [i for i, flag in enumerate(flags) if flag]
    first = segment_for(ordered, recipient, NOW)
    assert (first["name"] if first else None) == (f"s{matched[0]}" if matched else None)
    campaign: dict[str, Any] = {"segment_policy": "every", "segments": ordered}
    slots = slots_of(campaign, recipient, NOW)
    assert slots == ([str(i) for i in matched] or [NO_SLOT])  # one message each, or one for none
    expected: list[Any] = [ordered[i] for i in matched] or [None]
    assert [slot_segment(campaign, slot) for slot in slots] == expected


@given(
    rid=st.text(min_size=1, max_size=20).filter(lambda s: s.strip() == s), slot=st.sampled_from(["0", "7", "19", "-"])
)
def test_a_message_key_splits_back_into_its_recipient_and_slot_even_when_the_id_holds_the_separator(
    rid: str, slot: str
) -> None:
    key = delivery_key(rid, slot)
    assert split_key(key) == (rid, slot)
    assert delivery_key(rid, None) == rid  # a first-match campaign keys by the recipient's id, as before
    assert split_key(delivery_key(f"{rid}/3", slot)) == (f"{rid}/3", slot)


def test_a_delivery_names_its_recipient_by_the_slot_it_carries() -> None:
    assert recipient_of_delivery("a/1/2", {"slot": "2"}) == "a/1"  # claimed, skipped, failed or expired
    assert recipient_of_delivery("a/1/-", {}, {"recipient": {"slot": "-"}}) == "a/1"  # parked: in its data
    assert recipient_of_delivery("a/1", {"state": "succeeded"}) == "a/1"  # a first-match campaign's
