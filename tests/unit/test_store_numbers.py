"""Numbers back from DynamoDB: integers stay integers up to 38 digits; a float stored as an integral
Decimal past that comes back a float (else a clone re-checking its definition refused it)."""

from __future__ import annotations

from decimal import Decimal

from chalicelib.store.aws import from_item, to_item


def test_numbers_round_trip_as_what_a_request_can_carry() -> None:
    values = {"big_float": 5e40, "int": 12345678901234567890123456789012345678, "small": 2.5, "whole": 7.0}
    back = from_item(to_item(values))
    assert back["big_float"] == 5e40 and isinstance(back["big_float"], float)
    assert back["int"] == values["int"] and isinstance(back["int"], int)
    assert back["small"] == 2.5 and back["whole"] == 7
    assert from_item({"n": {"N": str(Decimal("1E+38"))}})["n"] == 1e38
