import pytest

from chalicelib.domain.campaign import CampaignAction as A
from chalicelib.domain.campaign import CampaignStatus as S
from chalicelib.domain.campaign import next_status
from chalicelib.domain.errors import Conflict

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("action", "current", "expected"),
    [
        (A.START, S.DRAFT, S.RUNNING),
        (A.START, S.SCHEDULED, S.RUNNING),
        (A.CANCEL, S.SCHEDULED, S.CANCELLED),
        (A.PAUSE, S.RUNNING, S.PAUSED),
        (A.RESUME, S.PAUSED, S.RUNNING),
        (A.CANCEL, S.DRAFT, S.CANCELLED),
        (A.CANCEL, S.RUNNING, S.CANCELLED),
        (A.CANCEL, S.PAUSED, S.CANCELLED),
        (A.COMPLETE, S.RUNNING, S.COMPLETED),
        (A.COMPLETE, S.PAUSED, S.COMPLETED),
    ],
)
def test_allowed_transitions_lead_where_the_lifecycle_says(action: A, current: S, expected: S) -> None:
    assert next_status(action, current) == expected


@pytest.mark.parametrize("action", [A.START, A.PAUSE, A.RESUME, A.CANCEL])
def test_cancelled_campaign_accepts_no_action(action: A) -> None:
    with pytest.raises(Conflict, match="cancelled; it accepts no further actions"):
        next_status(action, S.CANCELLED)


def test_conflict_names_the_actions_that_are_allowed() -> None:
    with pytest.raises(Conflict) as caught:
        next_status(A.RESUME, S.RUNNING)
    assert "allowed: cancel, pause" in caught.value.detail


def test_a_draft_cannot_be_paused_or_started_twice() -> None:
    with pytest.raises(Conflict):
        next_status(A.PAUSE, S.DRAFT)
    with pytest.raises(Conflict):
        next_status(A.START, S.RUNNING)


def test_a_scheduled_campaign_cannot_be_paused_or_resumed() -> None:
    for action in (A.PAUSE, A.RESUME):
        with pytest.raises(Conflict, match="allowed: cancel, start"):
            next_status(action, S.SCHEDULED)
