"""The campaign lifecycle: draft -> running <-> paused -> completed | cancelled."""

from __future__ import annotations

from enum import StrEnum

from chalicelib.domain.errors import Conflict, FieldError


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class CampaignAction(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    COMPLETE = "complete"


S = CampaignStatus
_TRANSITIONS: dict[tuple[CampaignAction, CampaignStatus], CampaignStatus] = {
    (CampaignAction.START, S.DRAFT): S.RUNNING,
    (CampaignAction.PAUSE, S.RUNNING): S.PAUSED,
    (CampaignAction.RESUME, S.PAUSED): S.RUNNING,
    (CampaignAction.CANCEL, S.DRAFT): S.CANCELLED,
    (CampaignAction.CANCEL, S.RUNNING): S.CANCELLED,
    (CampaignAction.CANCEL, S.PAUSED): S.CANCELLED,
    # A paused campaign whose last in-flight sends finish is complete too.
    (CampaignAction.COMPLETE, S.RUNNING): S.COMPLETED,
    (CampaignAction.COMPLETE, S.PAUSED): S.COMPLETED,
}

TERMINAL = frozenset({S.COMPLETED, S.CANCELLED})
SENDING = frozenset({S.RUNNING})
# PATCH: a draft takes any field; a started campaign that is not finished, these only.
STARTED = frozenset({S.RUNNING, S.PAUSED})
CHANGEABLE_WHEN_STARTED = frozenset({"name", "rate_per_second"})
# DELETE: a campaign that is not sending or about to send again.
DELETABLE = frozenset({S.DRAFT, *TERMINAL})


def next_status(action: CampaignAction, current: CampaignStatus) -> CampaignStatus:
    """The status `action` leads to from `current`, or Conflict naming what is allowed."""
    try:
        return _TRANSITIONS[(action, current)]
    except KeyError:
        allowed = sorted(a.value for (a, s) in _TRANSITIONS if s == current and a != CampaignAction.COMPLETE)
        hint = f"; allowed: {', '.join(allowed)}" if allowed else "; it accepts no further actions"
        raise Conflict(
            detail=f"cannot {action.value} a campaign that is {current.value}{hint}",
            errors=[FieldError("status", f"is {current.value}; {action.value} is not allowed{hint}")],
        ) from None
