"""What an erasure keeps of a value that mentions the person (decision 42): ids renamed exactly, addresses cut
in every text form, a delivery's copy with its counts and none of its personal fields."""

from __future__ import annotations

import json

from chalicelib.domain.erasure import ERASED, Person, Scrubber

PERSON = Person(frozenset({"+447700900123", "Ada@example.com"}), frozenset({"crm-7", "+447700900123"}))
SCRUB = Scrubber(PERSON, lambda rid: f"erased_{len(rid)}")


def test_ids_are_renamed_only_when_whole_and_addresses_are_cut_in_every_form() -> None:
    assert SCRUB.text("crm-7") == "erased_5"
    assert SCRUB.text("crm-77") == "crm-77"  # another recipient's id that starts the same
    assert SCRUB.text("+447700900123") == "erased_13"  # an id that is the number
    assert SCRUB.text("to 447700900123, cc ADA@EXAMPLE.COM") == f"to {ERASED}, cc {ERASED}"
    assert SCRUB.text("+447700900124") == "+447700900124"
    event = {"recipient_id": "crm-7", "data": {"destination": "+447700900123", "attempt": 2, "ok": True}}
    assert SCRUB.value(event) == {
        "recipient_id": "erased_5",
        "data": {"destination": "erased_13", "attempt": 2, "ok": True},
    }
    assert PERSON.mentioned_in("x 447700900123 y") and not PERSON.mentioned_in("+447700900124")


def test_a_deliverys_copy_keeps_its_counts_and_drops_every_personal_field() -> None:
    item = {
        "pk": "acc#C#cmp#0",
        "sk": "crm-7",
        "state": "succeeded",
        "attempt": 2,
        "variant": "b",
        "receipt": "delivered",
        "destination": "+447700900123",
        "recipient": {"destinations": [{"type": "phone", "address": "+447700900123"}], "attributes": {"n": "Ada"}},
        "provider_message_id": "uuid-1",
        "last_error": "number 447700900123 unreachable",
        "history": [{"attempt": 1, "destination": "+447700900123", "provider_message_id": "uuid-0", "outcome": "x"}],
    }
    copy = SCRUB.delivery(item, 5.0)
    assert copy == {
        "pk": "acc#C#cmp#0",
        "sk": "erased_5",
        "state": "succeeded",
        "attempt": 2,
        "variant": "b",
        "receipt": "delivered",
        "history": [{"attempt": 1, "outcome": "x"}],
        "erased_at": 5.0,
    }
    assert "447700900123" not in json.dumps(copy) and "Ada" not in json.dumps(copy)
