"""Store items as the API shows them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.domain.campaign import EndHandle
from chalicelib.domain.delivery import (
    ENGAGEMENT_COUNTERS,
    ENGAGEMENT_PREFIX,
    FINISHED_COUNTERS,
    RECEIPT_PREFIX,
    SEGMENT_PREFIX,
    SKIP_PREFIX,
    VARIANT_PREFIX,
    DeliveryState,
    last_change,
)
from chalicelib.domain.models import Attempt, Campaign, Counters, Delivery, Export, ListRecipient, RecipientList, Run
from chalicelib.domain.recurrence import next_occurrence
from chalicelib.store import exports, lists
from chalicelib.store.keys import RECIPIENT_PREFIX


def iso(epoch: float | None) -> str | None:
    if not epoch:
        return None
    return datetime.fromtimestamp(float(epoch), tz=UTC).isoformat().replace("+00:00", "Z")


def list_view(item: dict[str, Any]) -> RecipientList:
    return RecipientList(
        id=item["id"],
        name=item["name"],
        recipient_count=int(item["recipient_count"]),
        created_at=iso(item["created_at"]) or "",
    )


def list_recipient_view(item: dict[str, Any]) -> ListRecipient:
    return ListRecipient.model_validate(
        {**lists.recipient_of(item).to_dict(), "attributes": item.get("attributes", {}),
         "added_at": iso(int(item["added_at"]) / 1000) or ""}
    )  # fmt: skip


def counters_view(item: dict[str, Any]) -> Counters:
    in_flight, succeeded, failed, unknown, skipped, expired = (
        int(item.get(k, 0)) for k in ("in_flight", *FINISHED_COUNTERS)
    )
    expired += int(item.get("expired_unreleased", 0))  # never released: the campaign expired first
    counted = in_flight + succeeded + failed + unknown + skipped + expired
    # An upload still writing when the campaign started can add recipients the start-time count missed:
    # until the list is exhausted (when total becomes exact) total is never shown below what is known.
    total = max(int(item.get("total", 0)), int(item.get("released", 0)), counted)
    return Counters(
        total=total,
        queued=total - counted,
        in_flight=in_flight,
        succeeded=succeeded,
        failed=failed,
        unknown=unknown,
        skipped=skipped,
        skipped_by_reason={
            name.removeprefix(SKIP_PREFIX): int(value) for name, value in item.items() if name.startswith(SKIP_PREFIX)
        },
        expired=expired,
        delivered=int(item.get(f"{RECEIPT_PREFIX}delivered", 0)),
        read=int(item.get(f"{RECEIPT_PREFIX}read", 0)),
        undelivered=int(item.get(f"{RECEIPT_PREFIX}undelivered", 0)),
        **{name: int(item.get(f"{ENGAGEMENT_PREFIX}{name}", 0)) for name in ENGAGEMENT_COUNTERS},
        not_included=int(item.get("not_included", 0)),
    )


def variant_counters_view(
    item: dict[str, Any], kind: str = "variants", prefix: str = VARIANT_PREFIX
) -> dict[str, dict[str, int]]:
    """The counters kept per A/B variant (`v.<variant>.<counter>`) or per segment (`g.<segment>.<counter>`),
    every one listed."""
    counters: dict[str, dict[str, int]] = {
        v["name"]: dict.fromkeys(("in_flight", *FINISHED_COUNTERS, "waiting", *ENGAGEMENT_COUNTERS), 0)
        for v in item.get(kind) or []
    }
    for name, value in item.items():
        if name.startswith(prefix):
            group, _, counter = name.removeprefix(prefix).rpartition(".")
            counters.setdefault(group, {})[counter] = int(value)
    return counters


def campaign_view(item: dict[str, Any]) -> Campaign:
    return Campaign(
        id=item["id"],
        name=item["name"],
        list_id=item["list_id"],
        channel=item["channel"],
        sender=item["sender"],
        template=item["template"],
        email=item.get("email"),
        whatsapp=item.get("whatsapp"),
        voice=item.get("voice"),
        mms=item.get("mms"),
        viber=item.get("viber"),
        messenger=item.get("messenger"),
        action_id=item.get("action_id"),
        template_id=item.get("template_id"),
        template_version=int(item["template_version"]) if item.get("template_version") else None,
        template_locales=item.get("template_locales") or {},
        data=item.get("data") or {},
        rate_per_second=float(item["rate_per_second"]),
        retry_policy=item.get("retry_policy"),
        max_concurrent=int(item["max_concurrent"]) if item.get("max_concurrent") else None,
        category=item.get("category", "transactional"),
        window=item.get("window"),
        timezone=item.get("timezone", "UTC"),
        frequency_cap=item.get("frequency_cap"),
        variants=item.get("variants") or [],
        holdout_percent=float(item.get("holdout_percent", 0)),
        variant_counters=variant_counters_view(item),
        segments=item.get("segments") or [],
        fallback=item.get("fallback"),
        no_segment=item.get("no_segment", "send"),
        segment_policy=item.get("segment_policy", "first"),
        recipients=int(item["recipients"]) if item.get("recipients") is not None else None,
        allow_missing_variables=bool(item.get("allow_missing_variables")),
        segment_counters=variant_counters_view(item, "segments", SEGMENT_PREFIX),
        exclusion_list_ids=item.get("exclusion_list_ids", []),
        next_campaign_id=item.get("next_campaign_id"),
        end_handle=item.get("end_handle", EndHandle.STOP),
        next_problem=item.get("next_problem"),
        status=item["status"],
        pause_reason=item.get("pause_reason"),
        created_at=iso(item["created_at"]) or "",
        start_at=iso(item.get("start_at")),
        expires_at=iso(item.get("expires_at")),
        max_age_seconds=int(item["max_age_seconds"]) if item.get("max_age_seconds") else None,
        recurrence=item.get("recurrence"),
        next_run_at=_next_run(item),
        run_of=item.get("run_of"),
        started_at=iso(item.get("started_at")),
        started_late_seconds=item.get("started_late_seconds"),
        start_problem=item.get("start_problem"),
        finished_at=iso(item.get("finished_at")),
        counters=counters_view(item),
    )


def attempt_view(record: dict[str, Any]) -> Attempt:
    return Attempt(
        attempt=int(record["attempt"]),
        destination_index=int(record["destination_index"]),
        destination=record["destination"],
        try_number=int(record["try"]),
        channel=record["channel"],
        provider_message_id=record.get("provider_message_id"),
        outcome=record["outcome"],
        reason=record.get("reason"),
        error=record.get("error"),
        started_at=iso(record["started_at"]) or "",
        ended_at=iso(record["ended_at"]) or "",
    )


LAST_ATTEMPT_OUTCOMES = {DeliveryState.SUCCEEDED, DeliveryState.FAILED, DeliveryState.UNKNOWN}


def _last_attempt(item: dict[str, Any], channel: str) -> dict[str, Any] | None:
    """The attempt the outcome write closed, from the delivery's own fields (see `record_outcome`)."""
    if "ended_at" not in item or item["state"] not in LAST_ATTEMPT_OUTCOMES:
        return None
    return {
        "attempt": item["attempt"],
        "destination_index": item.get("destination_index", 0),
        "destination": item.get("destination", ""),
        "try": item.get("destination_try", 1),
        "channel": channel,
        "provider_message_id": item.get("provider_message_id"),
        "outcome": item["state"],
        "reason": item.get("last_reason"),
        "error": item.get("last_error"),
        "started_at": item["updated_at"],
        "ended_at": item["ended_at"],
    }


def delivery_view(
    item: dict[str, Any], channel: str, *, recipient_id: str | None = None, segment: str | None = None
) -> Delivery:
    """A delivery as the API shows it; an `every` campaign's message names its recipient and segment (decision 49)."""
    last = _last_attempt(item, channel)
    history = [*item.get("history", []), *([last] if last else [])]
    return Delivery(
        recipient_id=recipient_id or item["sk"],
        segment=segment,
        destination_index=item.get("destination_index"),
        destination=item.get("destination"),
        destination_try=item.get("destination_try"),
        state=item["state"],
        attempts=int(item["attempt"]),
        history=[attempt_view(a) for a in history],
        provider_message_id=item.get("provider_message_id"),
        last_error=item.get("last_error"),
        skip_reason=item.get("skip_reason"),
        next_attempt_at=iso(item.get("due_at")) if item["state"] == "queued" else None,
        receipt=item.get("receipt"),
        receipt_error=item.get("receipt_error"),
        delivered_at=iso(item.get("delivered_at")),
        read_at=iso(item.get("read_at")),
        clicks=int(item.get("clicks", 0)),
        clicked_at=iso(item.get("clicked_at")),
        conversions=int(item.get("conversions", 0)),
        converted_at=iso(item.get("converted_at")),
        conversion_goal=item.get("conversion_goal"),
        updated_at=iso(last_change(item)) or "",
    )


def _next_run(item: dict[str, Any]) -> str | None:
    recurrence = item.get("recurrence")
    if not recurrence or item["status"] != "scheduled":
        return None
    now = datetime.now(UTC)
    start = datetime.fromtimestamp(float(item.get("recurrence_anchor") or now.timestamp()), UTC)
    after = max(now, start - timedelta(seconds=1))  # a start date still ahead is itself an occurrence
    upcoming = next_occurrence(recurrence["expression"], recurrence.get("timezone", "UTC"), after, start)
    end = datetime.fromisoformat(recurrence["end_date"]) if recurrence.get("end_date") else None
    if upcoming is None or (end is not None and upcoming > end):
        return None
    return iso(upcoming.timestamp())


def run_view(record: dict[str, Any]) -> Run:
    run = record.get("run")
    return Run(
        id=record["run_id"],
        occurrence_at=iso(int(record["occurrence_at"])) or "",
        outcome=record["outcome"],
        skip_reason=record.get("skip_reason"),
        status=run["status"] if run else None,
        counters=counters_view(run) if run else None,
        started_at=iso(run.get("started_at")) if run else None,
        finished_at=iso(run.get("finished_at")) if run else None,
    )


def pending_view(list_item: dict[str, Any]) -> Delivery:
    """A recipient of the campaign's audience the campaign has not sent to yet (no delivery)."""
    return Delivery(
        recipient_id=list_item["sk"].removeprefix(RECIPIENT_PREFIX),
        state="pending",
        attempts=0,
        updated_at=iso(int(list_item["added_at"]) / 1000) or "",
    )


def export_view(item: dict[str, Any]) -> Export:
    completed = item["state"] == exports.COMPLETED
    return Export(
        id=item["id"],
        state=item["state"],
        rows=int(item.get("rows", 0)),
        download_url=exports.download_url(item["object_key"], f"{item['id']}.csv") if completed else None,
        error=item.get("error"),
        created_at=iso(item["created_at"]) or "",
        completed_at=iso(item.get("completed_at")),
    )
