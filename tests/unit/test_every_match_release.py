"""The release of an `every` campaign (decision 49): one entry per matching segment, keyed `<id>/<slot>`, and
the list cursor past a recipient only once all of its messages went out."""

from __future__ import annotations

from chalicelib.domain.recipients import Destination, DestinationType, Recipient
from chalicelib.operations.outcomes import recipient_of, target_of
from chalicelib.operations.pacer import Entry, _fresh_entries, _whole

SEGMENTS = [
    {"name": "a", "conditions": [{"field": "attributes.a", "op": "eq", "value": True}]},
    {"name": "b", "conditions": [{"field": "attributes.b", "op": "eq", "value": True}]},
]
PHONE = (Destination(DestinationType.PHONE, "+14155550001"),)


def test_each_matching_segment_is_an_entry_of_its_own_and_a_first_match_campaign_has_one() -> None:
    both = Recipient(id="x/1", destinations=PHONE, attributes={"a": True, "b": True})
    every = {"pk": "acc#C#c1", "segment_policy": "every", "segments": SEGMENTS}
    entries = _fresh_entries(every, both, "pos", 0.0)
    assert [(e.body["id"], e.body["slot"], e.last) for e in entries] == [("x/1/0", "0", False), ("x/1/1", "1", True)]
    assert [recipient_of(e.body).id for e in entries] == ["x/1", "x/1"]  # an id holding "/" stays itself
    target = target_of(every, entries[1].body)
    assert (target.rid, target.slot, target.recipient.id) == ("x/1/1", "1", "x/1")
    assert target.data["slot"] == "1"  # a retry or a parked message comes back as the same message

    none = Recipient(id="n", destinations=PHONE, attributes={})
    assert [(e.body["id"], e.body["slot"]) for e in _fresh_entries(every, none, "pos", 0.0)] == [("n/-", "-")]
    (plain,) = _fresh_entries({**every, "segment_policy": "first"}, both, "pos", 0.0)
    assert plain.body["id"] == "x/1" and "slot" not in plain.body and plain.last


def test_a_recipient_partly_queued_is_released_again_whole() -> None:
    entries = [Entry({}, "p1"), Entry({}, "p2", last=False), Entry({}, "p2", last=False), Entry({}, "p2")]
    assert [_whole(entries, sent) for sent in range(5)] == [0, 1, 1, 1, 4]
