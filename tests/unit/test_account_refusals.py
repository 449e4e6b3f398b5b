"""The refusal a process saw keeps the provider's reason: a send held back after it (its own outcome says
only "not sent") cannot replace the reason the campaign pauses with, whichever pause write lands first."""

from __future__ import annotations

from chalicelib.operations.outcomes import AccountRefusals


def test_the_first_reason_is_kept_while_the_refusal_is_fresh() -> None:
    refusals = AccountRefusals()
    assert not refusals.refused("c1") and refusals.reason("c1") is None
    refusals.note("c1", "provider answered 401: You did not provide correct credentials.")
    refusals.note("c1", "not sent: the provider had just refused the account")
    assert refusals.refused("c1")
    assert refusals.reason("c1") == "provider answered 401: You did not provide correct credentials."
    assert refusals.reason("c2") is None
