import pytest

from chalicelib.domain.recipients import check_rows, normalize_e164

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
    assert [(v.index, v.phone) for v in batch.valid] == [(0, "+14155550100"), (5, "+447911123457")]
    assert [(r.index, r.reason) for r in batch.rejected] == [
        (1, "invalid_phone"),
        (2, "duplicate"),
        (3, "invalid_row"),
        (4, "invalid_row"),
    ]
    assert "nickname" in batch.rejected[3].detail
    assert batch.valid[0].params == {"first_name": "Ada"}
