"""Campaign items: definition, status, release progress and the counters the stream keeps."""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.domain.campaign import CampaignStatus, EndHandle
from chalicelib.domain.delivery import COUNTERS, counter_names
from chalicelib.domain.errors import Conflict, FieldError, NotFound
from chalicelib.settings import get_settings
from chalicelib.store import aws, keys, stream_guard

ACTIVE = "running"


def create_campaign(
    account_id: str,
    definition: dict[str, Any],
    *,
    audience: int = 0,
    campaign_id: str | None = None,
    created_at: float | None = None,
) -> dict[str, Any]:
    """The campaign's META, and beside it an index item under the account (GET /v1/campaigns pages those).
    `total` starts as the list's `audience` at creation; the start counts it again. With a `campaign_id`
    and `created_at` (a run: both come from its occurrence, so a repeated occurrence writes the same items),
    the campaign already made under it is returned instead."""
    given = campaign_id is not None
    campaign_id = campaign_id or keys.new_id("cmp")
    created_at = created_at or time.time()
    index_sk = keys.campaign_index_sk(int(created_at * 1000), campaign_id)
    table = get_settings().main_table
    # The index item first: one without its META (a crash in between) is skipped when listing.
    index = {"pk": keys.campaigns_index_pk(account_id), "sk": index_sk, "id": campaign_id}
    aws.dynamodb().put_item(TableName=table, Item=aws.to_item({**index, "list_id": definition["list_id"]}))
    # Whose campaign it is, for the delivery receipts (they name the campaign only, in `client_ref`).
    owner = {"pk": keys.campaign_owner_pk(campaign_id), "sk": "-", "account": account_id}
    aws.dynamodb().put_item(TableName=table, Item=aws.to_item(owner))
    item = {
        **definition,
        "pk": keys.campaign_pk(account_id, campaign_id),
        "sk": keys.META,
        "id": campaign_id,
        "status": CampaignStatus.DRAFT.value,
        "created_at": created_at,
        "index_sk": index_sk,
        "total": audience,
        **dict.fromkeys(COUNTERS, 0),
        "buckets": keys.bucket_count(float(definition["rate_per_second"])),
        "stream_seq": {},
        "stream_batches": 0,
        "released_until": 0,
    }
    if not given:
        aws.dynamodb().put_item(TableName=table, Item=aws.to_item(item))
        return aws.from_item(aws.to_item(item))
    try:
        aws.dynamodb().put_item(TableName=table, Item=aws.to_item(item), ConditionExpression="attribute_not_exists(pk)")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        existing = get_campaign_by_pk(item["pk"])
        if existing is not None:
            return existing
        raise
    return aws.from_item(aws.to_item(item))


def get_status(pk: str) -> str | None:
    """The campaign's status alone (a small read, taken often while dispatch sends)."""
    found = aws.dynamodb().get_item(
        TableName=get_settings().main_table,
        Key=aws.to_item({"pk": pk, "sk": keys.META}),
        ConsistentRead=True,
        ProjectionExpression="#st",
        ExpressionAttributeNames={"#st": "status"},
    )
    return str(found["Item"]["status"]["S"]) if "Item" in found else None


def get_live_fields(pk: str) -> dict[str, Any] | None:
    """What dispatch reads again while it sends: the status, the expiry, the rate and the concurrency limit (a
    small projected read)."""
    found = aws.dynamodb().get_item(
        TableName=get_settings().main_table,
        Key=aws.to_item({"pk": pk, "sk": keys.META}),
        ConsistentRead=True,
        ProjectionExpression="#st, expires_at, rate_per_second, max_concurrent",
        ExpressionAttributeNames={"#st": "status"},
    )
    return aws.from_item(found["Item"]) if "Item" in found else None


def get_campaign_by_pk(pk: str) -> dict[str, Any] | None:
    found = aws.dynamodb().get_item(
        TableName=get_settings().main_table, Key=aws.to_item({"pk": pk, "sk": keys.META}), ConsistentRead=True
    )
    return aws.from_item(found["Item"]) if "Item" in found else None


def owner_of(campaign_id: str) -> str | None:
    """The account a campaign id belongs to (None: no such campaign, or one made before owners were kept)."""
    found = aws.dynamodb().get_item(
        TableName=get_settings().main_table, Key=aws.to_item({"pk": keys.campaign_owner_pk(campaign_id), "sk": "-"})
    )
    return str(found["Item"]["account"]["S"]) if "Item" in found else None


def get_campaign(account_id: str, campaign_id: str) -> dict[str, Any]:
    item = get_campaign_by_pk(keys.campaign_pk(account_id, campaign_id))
    if item is None:
        raise NotFound(detail=f"campaign {campaign_id} does not exist")
    return item


def change_status(
    pk: str, current: CampaignStatus, new: CampaignStatus, *, sets: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Move the campaign from `current` to `new` if nobody moved it first; Conflict otherwise."""
    sets = dict(sets or {})
    sets["status"] = new.value
    if new in (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED, CampaignStatus.EXPIRED):
        sets["finished_at"] = time.time()
    names = {f"#{k}": k for k in sets}
    values = {f":{k}": v for k, v in sets.items()}
    names["#current_status"] = "status"
    values[":current_status"] = current.value
    expression = "SET " + ", ".join(f"#{k} = :{k}" for k in sets)
    if new == CampaignStatus.RUNNING:
        expression += ", active = :active"
        values[":active"] = ACTIVE
    else:
        expression += " REMOVE active"
    answer = aws.write_if(
        aws.dynamodb().update_item,
        TableName=get_settings().main_table,
        Key=aws.to_item({"pk": pk, "sk": keys.META}),
        UpdateExpression=expression,
        ConditionExpression="#current_status = :current_status",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=aws.to_values(values),
        ReturnValues="ALL_NEW",
    )
    if answer is None:
        raise Conflict(
            detail=f"the campaign is no longer {current.value}; read it again",
            errors=[FieldError("status", f"is no longer {current.value}")],
        )
    return aws.from_item(answer["Attributes"])


def running_campaign_pks() -> list[str]:
    """Campaigns the pacer must serve, from the sparse `active` index (never a Scan)."""
    params: dict[str, Any] = {
        "TableName": get_settings().main_table,
        "IndexName": "active",
        "KeyConditionExpression": "active = :a",
        "ExpressionAttributeValues": {":a": {"S": ACTIVE}},
    }
    return [item["pk"]["S"] for item in aws.query_all(params)]


def take_release_lease(pk: str, now: float, lease_seconds: float) -> dict[str, Any] | None:
    """Let one pacer at a time release for this campaign (a tick and a start can meet).

    Returns the campaign as the lease holder sees it, or None when it is not running or leased.
    """
    return update_meta(
        pk,
        "SET release_lease = :until",
        "#s = :running AND (attribute_not_exists(release_lease) OR release_lease < :now)",
        {":until": now + lease_seconds, ":now": now, ":running": CampaignStatus.RUNNING.value},
        {"#s": "status"},
    )


def save_release_progress(
    pk: str,
    *,
    lease: float,
    new_cursor: str | None,
    released_until: float,
    exhausted: bool,
    fresh: int,
    exact_total: int | None = None,
    windowed: int = 0,
    window_next: float | None = None,
) -> bool:
    """Record how far the pacer got and give the lease back; False when the lease was lost meanwhile.

    `windowed` is the change in the recipients held for their send window (decision 27), `window_next`
    when the earliest of their groups opens (None: unchanged).

    `exact_total`, given when the first pass over the list is done, is the number of recipients it
    released: the exact audience, whatever the list's running count said when the campaign started.
    `total` becomes that, plus the recipients a `continue` campaign took since its start (`late_added`,
    which later passes release).
    """
    values: dict[str, Any] = {":until": released_until, ":ex": exhausted, ":lease": lease, ":n": fresh, ":zero": 0}
    expression = "SET released_until = :until, release_exhausted = :ex, released = if_not_exists(released, :zero) + :n"
    if exact_total is not None:
        expression += ", #total = :exact + if_not_exists(late_added, :zero)"
        values[":exact"] = exact_total
    if new_cursor is not None:
        expression += ", release_cursor = :new"
        values[":new"] = new_cursor
    if windowed:
        expression += ", windowed = if_not_exists(windowed, :zero) + :windowed"
        values[":windowed"] = windowed
    if window_next is not None:
        expression += ", window_next = :next"
        values[":next"] = window_next
    expression += " REMOVE release_lease"
    names = {"#total": "total"} if exact_total is not None else None
    return update_meta(pk, expression, "release_lease = :lease", values, names, returned=False) is not None


def note_late_recipients(pk: str, end_handle: EndHandle, added: int, added_at_ms: int) -> bool:
    """`added` recipients were added to the campaign's list at `added_at_ms`, after its start, while it was
    read running or paused with `end_handle`. A `continue` campaign takes them: its total grows (and
    `late_added`, which the end of the first pass adds to the audience it counted), and `late_from` keeps
    the earliest time a pass over the list must read from (the pacer's next pass). A `stop` campaign
    counts them as `not_included`. False when the campaign changed meanwhile."""
    values: dict[str, Any] = {
        ":n": added,
        ":at": added_at_ms,
        ":running": CampaignStatus.RUNNING.value,
        ":paused": CampaignStatus.PAUSED.value,
        ":handle": end_handle.value,
    }
    names = {"#s": "status", "#total": "total"}
    condition = "#s IN (:running, :paused) AND started_at_ms < :at AND "
    if end_handle == EndHandle.STOP:
        condition += "(attribute_not_exists(end_handle) OR end_handle = :handle)"
        return update_meta(pk, "ADD not_included :n", condition, values, {"#s": "status"}) is not None
    condition += "end_handle = :handle"
    earliest = " AND (attribute_not_exists(late_from) OR late_from > :at)"
    adds = "ADD #total :n, late_added :n"
    if update_meta(pk, f"SET late_from = :at {adds}", condition + earliest, values, names) is not None:
        return True
    return update_meta(pk, adds, condition, values, names) is not None  # an earlier pass is due


def begin_pass(pk: str, *, lease: float, late_from: int) -> bool:
    """Under the release lease, start a pass over the list for the recipients added from `late_from` on
    (a `continue` campaign whose list was read to the end): the cursor starts again, and `late_from` is
    taken unless an earlier addition moved it meanwhile (then the next release starts from that one)."""
    values = {":lease": lease, ":from": late_from, ":no": False}
    return (
        update_meta(
            pk,
            "SET pass_from = :from, release_exhausted = :no REMOVE late_from, release_cursor",
            "release_lease = :lease AND late_from = :from",
            values,
        )
        is not None
    )


def update_meta(
    pk: str,
    expression: str,
    condition: str,
    values: dict[str, Any],
    names: dict[str, str] | None = None,
    *,
    returned: bool = True,
) -> dict[str, Any] | None:
    """A conditional UpdateItem on the campaign's META; None when the condition failed, else the campaign
    after it (`returned`), or an empty dict (not `returned`: the write did not ask for the item)."""
    answer = aws.write_if(
        aws.dynamodb().update_item,
        TableName=get_settings().main_table,
        Key=aws.to_item({"pk": pk, "sk": keys.META}),
        UpdateExpression=expression,
        ConditionExpression=condition,
        ExpressionAttributeValues=aws.to_values(values),
        **({"ReturnValues": "ALL_NEW"} if returned else {}),
        **({"ExpressionAttributeNames": names} if names else {}),
    )
    if answer is None:
        return None
    return aws.from_item(answer["Attributes"]) if returned else {}


def mark_expired(pk: str, *, lease: float, unreleased: int) -> dict[str, Any] | None:
    """The campaign passed its expiry: release nothing more, count the `unreleased` recipients as expired,
    and give the lease back (held by the caller, so no release moves the cursor meanwhile). Once only."""
    return update_meta(
        pk,
        "SET release_exhausted = :yes, expired_unreleased = :n REMOVE release_lease",
        "release_lease = :lease AND attribute_not_exists(expired_unreleased)",
        {":yes": True, ":n": unreleased, ":lease": lease},
    )


def apply_counter_deltas(pk: str, batches: dict[int, stream_guard.BucketChanges]) -> dict[str, Any] | None:
    """Add one stream batch's changes (bucket -> its changes) to the campaign's counters, each change once
    (`stream_seq` holds each bucket's guard; store/stream_guard.py). Returns the campaign after the update;
    None when there was nothing left to add."""
    return stream_guard.add_once(
        {"pk": pk, "sk": keys.META},
        batches,
        lambda bucket: ["stream_seq", str(bucket)],
        also_add={"stream_batches": 1},
        must_exist=True,
    )


def set_counters(pk: str, counts: dict[str, int], *, batches_seen: int) -> dict[str, Any] | None:
    """Overwrite the counters with a recount, unless a stream batch was applied since it began."""
    values: dict[str, Any] = {":seen": batches_seen}
    names: dict[str, str] = {}
    sets = []
    for i, name in enumerate(counter_names(counts)):
        names[f"#c{i}"] = name
        values[f":v{i}"] = int(counts.get(name, 0))
        sets.append(f"#c{i} = :v{i}")
    return update_meta(pk, "SET " + ", ".join(sets), "stream_batches = :seen", values, names)


def set_clause(fields: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """`SET` of `fields` with placeholder names and values (any field name, reserved words included)."""
    names = {f"#f{i}": name for i, name in enumerate(fields)}
    values = {f":f{i}": value for i, value in enumerate(fields.values())}
    return "SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(fields))), names, values


def set_fields(pk: str, fields: dict[str, Any]) -> None:
    """Set plain fields on an existing campaign (notes such as `next_problem`; not its status)."""
    expression, names, values = set_clause(fields)
    update_meta(pk, expression, "attribute_exists(pk)", values, names, returned=False)
