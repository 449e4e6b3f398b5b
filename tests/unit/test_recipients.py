from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.recipients import (
    DYNAMODB_LARGEST,
    DYNAMODB_SMALLEST,
    MAX_PARAMS_BYTES,
    check_rows,
    normalize_e164,
    number_problem,
)

pytestmark = pytest.mark.unit


def test_valid_numbers_are_normalized_to_e164() -> None:
    assert normalize_e164("+1 (415) 555-0100") == "+14155550100"
    assert normalize_e164("+44 7911 123456") == "+447911123456"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("4155550100", "E.164"),
        ("+999", "not a phone number"),
        ("+1415555", "not a valid number"),
        ("+abc", "not a phone number"),
    ],
)
def test_invalid_numbers_say_why(raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalize_e164(raw)


def test_a_batch_reports_each_bad_row_with_its_index_and_keeps_the_rest() -> None:
    rows = [
        {"phone": "+14155550100", "params": {"first_name": "Ada"}},
        {"phone": "0044 7911"},
        {"phone": "+1 415 555 0100"},
        "not an object",
        {"phone": "+447911123456", "nickname": "x"},
        {"phone": "+447911123457", "params": {"n": 3}},
    ]
    batch = check_rows(rows)
    assert [(v.index, v.id) for v in batch.valid] == [(0, "+14155550100"), (5, "+447911123457")]
    assert [(r.index, r.reason) for r in batch.rejected] == [
        (1, "invalid_phone"),
        (2, "duplicate"),
        (3, "invalid_row"),
        (4, "invalid_row"),
    ]
    assert "nickname" in batch.rejected[3].detail
    assert batch.valid[0].recipient.attributes == {"first_name": "Ada"}


# --- what DynamoDB can store -----------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [0, 0.0, -0.0, 1, -1, 1e-130, -1e-130, 9.999999999999998e125, 10**38 - 1, -(10**38 - 1), 1.5e-7, True]
)
def test_numbers_dynamodb_holds_are_accepted_in_params(value: float) -> None:
    batch = check_rows([{"phone": "+14155550100", "params": {"n": value}}])
    assert batch.valid and not batch.rejected


@pytest.mark.parametrize(
    "value", [1e-131, -1e-131, 5e-324, 1e126, -1e126, 1e300, float("inf"), float("-inf"), float("nan"), 10**38, 10**40]
)
def test_numbers_dynamodb_cannot_hold_reject_the_row_naming_params(value: float) -> None:
    batch = check_rows([{"phone": "+14155550100", "params": {"n": value}}, {"phone": "+14155550101"}])
    assert [v.index for v in batch.valid] == [1]
    (rejected,) = batch.rejected
    assert (rejected.index, rejected.reason) == (0, "invalid_row")
    assert rejected.detail.startswith("params: 'n' ")


@given(st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True)))
def test_every_number_accepted_is_one_the_store_can_write(value: float) -> None:
    from boto3.dynamodb.types import DYNAMODB_CONTEXT, TypeSerializer

    if number_problem(value) is not None:
        return
    # What chalicelib.store.aws writes: floats as Decimal(str(value)), through boto3's DynamoDB context.
    number = Decimal(str(value)) if isinstance(value, float) else value
    serialized = TypeSerializer().serialize(number)
    stored = Decimal(serialized["N"])
    assert stored == 0 or DYNAMODB_SMALLEST <= abs(stored) <= DYNAMODB_LARGEST
    assert len(DYNAMODB_CONTEXT.create_decimal(stored).as_tuple().digits) <= 38


def test_params_are_capped_at_4_kb_of_utf8_json() -> None:
    rows = [
        {"phone": "+14155550100", "params": {"k": "x" * (MAX_PARAMS_BYTES - 8)}},  # {"k":"…"} is exactly 4,096
        {"phone": "+14155550101", "params": {"k": "x" * (MAX_PARAMS_BYTES - 7)}},
        {"phone": "+14155550102", "params": {"k": "\u00e9" * 2045}},  # 4,090 bytes of text in 2,045 characters
    ]
    batch = check_rows(rows)
    assert [v.index for v in batch.valid] == [0]
    assert [(r.index, r.reason) for r in batch.rejected] == [(1, "invalid_row"), (2, "invalid_row")]
    assert all(r.detail.startswith("params: ") for r in batch.rejected)


def test_an_empty_param_name_rejects_the_row() -> None:
    (rejected,) = check_rows([{"phone": "+14155550100", "params": {"": "x"}}]).rejected
    assert rejected.reason == "invalid_row"
    assert rejected.detail.startswith("params: ")


# --- list items: ids, several destinations, typed attributes ----------------------------------


def test_a_list_item_keeps_its_id_and_normalises_each_destination() -> None:
    (valid,) = check_rows(
        [
            {
                "id": "crm-42",
                "destinations": [
                    {"type": "phone", "address": "+44 7911 123456"},
                    {"type": "email", "address": "Ada@Example.COM"},
                    {"type": "whatsapp", "address": "+1 415 555 0100"},
                    {"type": "voice", "address": "sip:agent@pbx.example.com"},
                ],
                "attributes": {"first_name": "Ada", "vip": True, "score": 3.5, "joined": "2024-05-01"},
                "locale": "en_GB",
                "timezone": "Europe/London",
            }
        ]
    ).valid
    r = valid.recipient
    assert r.id == "crm-42"
    assert [(d.type.value, d.address) for d in r.destinations] == [
        ("phone", "+447911123456"),
        ("email", "Ada@example.com"),
        ("whatsapp", "+14155550100"),
        ("voice", "sip:agent@pbx.example.com"),
    ]
    assert (r.locale, r.timezone) == ("en-GB", "Europe/London")
    assert r.destination_for("sms") == (0, r.destinations[0])
    assert r.destination_for("whatsapp") == (2, r.destinations[2])
    assert r.destination_for("email") == (1, r.destinations[1])


def test_without_an_id_the_first_destination_is_the_id_and_duplicates_go_by_it() -> None:
    batch = check_rows(
        [
            {"destinations": [{"type": "email", "address": "ada@example.com"}]},
            {"destinations": [{"type": "email", "address": " ada@example.com "}]},
            {"phone": "+14155550100"},
            {"id": "+14155550100", "destinations": [{"type": "email", "address": "b@example.com"}]},
        ]
    )
    assert [v.id for v in batch.valid] == ["ada@example.com", "+14155550100"]
    assert [(r.index, r.reason, r.id) for r in batch.rejected] == [
        (1, "duplicate", "ada@example.com"),
        (3, "duplicate", "+14155550100"),
    ]


def test_national_numbers_need_a_default_region_and_letters_are_refused() -> None:
    rows = [
        {"destinations": [{"type": "phone", "address": "07911 123456"}]},
        {"destinations": [{"type": "phone", "address": "+1 800 FLOWERS"}]},
    ]
    without = check_rows(rows)
    assert [(r.index, r.reason, r.field) for r in without.rejected] == [
        (0, "invalid_phone", "destinations[0].address"),
        (1, "invalid_phone", "destinations[0].address"),
    ]
    with_region = check_rows(rows, default_region="GB")
    assert [v.id for v in with_region.valid] == ["+447911123456"]
    assert "only digits" in with_region.rejected[0].detail


@pytest.mark.parametrize(
    ("row", "reason", "field"),
    [
        (
            {"destinations": [{"type": "email", "address": "not-an-address"}]},
            "invalid_email",
            "destinations[0].address",
        ),
        ({"destinations": [{"type": "voice", "address": "sip:@x"}]}, "invalid_address", "destinations[0].address"),
        ({"destinations": []}, "invalid_row", "destinations"),
        ({"destinations": [{"type": "phone", "address": "+14155550100"}] * 6}, "invalid_row", "destinations"),
        ({"destinations": [{"type": "fax", "address": "+14155550100"}]}, "invalid_row", "destinations[0].type"),
        (
            {"destinations": [{"type": "phone", "address": "+14155550100"}], "timezone": "Mars/Olympus"},
            "invalid_row",
            "timezone",
        ),
        (
            {"destinations": [{"type": "phone", "address": "+14155550100"}], "locale": "english!"},
            "invalid_row",
            "locale",
        ),
        ({"id": " padded", "destinations": [{"type": "phone", "address": "+14155550100"}]}, "invalid_row", "id"),
        (
            {"destinations": [{"type": "phone", "address": "+14155550100"}], "attributes": {"x": [1]}},
            "invalid_row",
            "attributes.x",
        ),
    ],
)
def test_each_bad_item_names_its_field_and_reason(row: dict[str, object], reason: str, field: str) -> None:
    (rejected,) = check_rows([row]).rejected
    assert (rejected.reason, rejected.field) == (reason, field)
    assert rejected.field is not None and rejected.detail.startswith(rejected.field.split("[")[0])
