"""Numbers back from DynamoDB: integers stay integers up to 38 digits; a float stored as an integral
Decimal past that comes back a float (else a clone re-checking its definition refused it)."""

from __future__ import annotations

from decimal import Decimal

from boto3.dynamodb.types import TypeDeserializer
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.store.aws import _plain, from_item, to_item, to_values


def test_numbers_round_trip_as_what_a_request_can_carry() -> None:
    values = {"big_float": 5e40, "int": 12345678901234567890123456789012345678, "small": 2.5, "whole": 7.0}
    back = from_item(to_item(values))
    assert back["big_float"] == 5e40 and isinstance(back["big_float"], float)
    assert back["int"] == values["int"] and isinstance(back["int"], int)
    assert back["small"] == 2.5 and back["whole"] == 7
    assert from_item({"n": {"N": str(Decimal("1E+38"))}})["n"] == 1e38


# Any attribute value the service could store: strings, numbers (integers up to 38 digits, floats), booleans,
# null, maps, lists, string and number sets.
_scalars = (
    st.text(max_size=8)
    | st.integers(min_value=1 - 10**38, max_value=10**38 - 1)
    | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e60, max_value=1e60)
    | st.booleans()
    | st.none()
    | st.frozensets(st.text(min_size=1, max_size=4), min_size=1, max_size=3).map(set)
    | st.frozensets(st.integers(min_value=-999, max_value=999), min_size=1, max_size=3).map(set)
)
_values = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
)


@given(st.dictionaries(st.text(min_size=1, max_size=6), _values, max_size=5))
def test_from_item_reads_every_value_as_the_deserializer_and_plain_would(values: dict[str, object]) -> None:
    """from_item's fast path for strings, short integers, maps and lists gives what it gave before it:
    TypeDeserializer's value with Decimals made plain."""
    wire = to_values(values)
    assert from_item(wire) == {k: _plain(TypeDeserializer().deserialize(v)) for k, v in wire.items()}
