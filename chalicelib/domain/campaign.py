"""The campaign lifecycle: draft <-> scheduled -> running <-> paused -> completed | cancelled | expired."""

from __future__ import annotations

from enum import StrEnum

from chalicelib.domain.errors import Conflict, FieldError


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"  # a draft with a start time: an EventBridge Scheduler schedule starts it
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # its `expires_at` passed: nothing more was sent, the recipients not reached expired


class EndHandle(StrEnum):
    """What a campaign does once its list is sent (VoIPBIN's `end_handle`)."""

    STOP = "stop"  # complete when every recipient of the list as it stood at the start is final
    CONTINUE = "continue"  # stay running and send to recipients added to the list later, until PATCHed to stop


class CampaignAction(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    COMPLETE = "complete"
    EXPIRE = "expire"


S = CampaignStatus
_TRANSITIONS: dict[tuple[CampaignAction, CampaignStatus], CampaignStatus] = {
    (CampaignAction.START, S.DRAFT): S.RUNNING,
    (CampaignAction.START, S.SCHEDULED): S.RUNNING,  # by its schedule, or by hand before its time
    (CampaignAction.PAUSE, S.RUNNING): S.PAUSED,
    (CampaignAction.RESUME, S.PAUSED): S.RUNNING,
    (CampaignAction.CANCEL, S.DRAFT): S.CANCELLED,
    (CampaignAction.CANCEL, S.SCHEDULED): S.CANCELLED,
    (CampaignAction.CANCEL, S.RUNNING): S.CANCELLED,
    (CampaignAction.CANCEL, S.PAUSED): S.CANCELLED,
    # A paused campaign whose last in-flight sends finish is complete too.
    (CampaignAction.COMPLETE, S.RUNNING): S.COMPLETED,
    (CampaignAction.COMPLETE, S.PAUSED): S.COMPLETED,
    # Past `expires_at`, once every recipient released before it is final (the rest are expired).
    (CampaignAction.EXPIRE, S.RUNNING): S.EXPIRED,
    (CampaignAction.EXPIRE, S.PAUSED): S.EXPIRED,
}
# Actions the service takes by itself, never named as allowed to a caller.
_INTERNAL = frozenset({CampaignAction.COMPLETE, CampaignAction.EXPIRE})

TERMINAL = frozenset({S.COMPLETED, S.CANCELLED, S.EXPIRED})
SENDING = frozenset({S.RUNNING})
# PATCH: a draft or scheduled campaign takes any field (a start time makes it scheduled, none a draft);
# a started campaign that is not finished, these only.
NOT_STARTED = frozenset({S.DRAFT, S.SCHEDULED})
STARTED = frozenset({S.RUNNING, S.PAUSED})
CHANGEABLE_WHEN_STARTED = frozenset(
    {
        "name",
        "rate_per_second",
        "next_campaign_id",
        "expires_at",
        "window",
        "frequency_cap",
        "end_handle",
        "max_concurrent",
    }
)
# A chain of campaigns (next_campaign_id) is followed this far when looking for a cycle.
MAX_CHAIN = 100
# DELETE: a campaign that is not sending or about to send again.
DELETABLE = frozenset({*NOT_STARTED, *TERMINAL})
# A start more than this late (a missed or delayed schedule) is reported on the campaign.
LATE_START_SECONDS = 60.0


def next_status(action: CampaignAction, current: CampaignStatus) -> CampaignStatus:
    """The status `action` leads to from `current`, or Conflict naming what is allowed."""
    try:
        return _TRANSITIONS[(action, current)]
    except KeyError:
        allowed = sorted(a.value for (a, s) in _TRANSITIONS if s == current and a not in _INTERNAL)
        hint = f"; allowed: {', '.join(allowed)}" if allowed else "; it accepts no further actions"
        raise Conflict(
            detail=f"cannot {action.value} a campaign that is {current.value}{hint}",
            errors=[FieldError("status", f"is {current.value}; {action.value} is not allowed{hint}")],
        ) from None
