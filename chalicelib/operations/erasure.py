"""Erase a person from an account (decision 42): accepted at once, carried out by a job on the erasure queue.

The job runs its steps in order; each step reads what it covers and changes only what still mentions the
person, so running a step (or the whole job) again changes nothing more. When the time budget runs low
between steps, the rest goes back to the queue with the step to start from; the person (addresses and
recipient ids, resolved from the lists by the first run) travels in the message, since the lists no longer
hold them once erased.

- lists: the person's list items are removed (the list's count and field counts go down with them);
  uploads' rejected rows that mention them are removed.
- deliveries: a finished delivery is replaced by an anonymised copy under the erased id (state, attempt,
  variant, segment, receipt, times: what counters and a recount read), which the stream consumers ignore;
  receipts kept for the provider's message ids are removed. A delivery still under way (queued, in flight)
  is left for the next run: the job waits (`waiting`) and comes back.
- suppressions: one per scope of each address unless `suppress` is false, keyed by the keyed hash only; the
  clear address is removed from suppressions made before (a STOP's).
- caps: the frequency-cap items keyed by an address are removed.
- webhook delivery log: payloads that mention the person are rewritten without them.
- objects (S3): event log lines and outcome-export rows are rewritten anonymised; rows of list exports and
  rejected-row files that mention the person are removed (they carry attributes); an uploaded file that
  mentions them, or is not text (XLSX) and was of a list they were in, is removed (rewriting it would be a
  new upload to ingest: S3 notifies every object created under uploads/).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from typing import Any

from chalicelib.domain import segments
from chalicelib.domain.erasure import ERASED, ERASED_ID_PREFIX, Person, Scrubber, is_erased_id
from chalicelib.domain.errors import NotFound
from chalicelib.domain.responses import SCOPES, scopes_for
from chalicelib.observability import logger
from chalicelib.operations.export import CAMPAIGN_COLUMNS
from chalicelib.settings import get_settings
from chalicelib.store import caps, erasures, keys, list_items, lists, numbers, suppressions

STEPS = ("lists", "deliveries", "suppressions", "caps", "webhook_deliveries", "objects")
FINAL = frozenset({"succeeded", "failed", "unknown", "skipped", "expired"})
MARGIN_SECONDS = 20.0
# While a campaign of the account is running, a chunk released before the erasure may still claim the person
# (a delivery made after the deliveries step read): the job passes again this many times, a wait apart.
SENDING_PASSES = 12
Counts = dict[str, int]


def request(
    account_id: str,
    *,
    destination: str | None,
    recipient_id: str | None,
    suppress: bool,
    channel: str,
    requested_by: str,
) -> dict[str, Any]:
    """Record the erasure (audit item, no clear address) and queue its job; the item."""
    erasure_id = keys.new_id("era")
    subject = destination or recipient_id or ""
    item = erasures.create(
        account_id,
        erasure_id,
        {
            "scope": {
                "by": "destination" if destination else "recipient_id",
                "channel": channel,
                "suppress": suppress,
            },
            "subject": suppressions.address_key(account_id, subject),
            "requested_by": requested_by,
        },
    )
    erasures.send_job(
        {
            "account": account_id,
            "erasure": erasure_id,
            "destination": destination,
            "recipient_id": recipient_id,
            "suppress": suppress,
            "channel": channel,
            "step": 0,
        }
    )
    return item


def erased_id(account_id: str, recipient_id: str) -> str:
    """The id an erased recipient's deliveries and events go by: stable, and nothing to read the id back from."""
    if is_erased_id(recipient_id):
        return recipient_id
    return ERASED_ID_PREFIX + suppressions.address_key(account_id, "id:" + recipient_id)[:24]


def run(job: dict[str, Any], time_left: Callable[[], float]) -> str:
    """One run of an erasure job: completed, continued, waiting or skipped (unknown or finished erasure)."""
    account_id, erasure_id = str(job["account"]), str(job["erasure"])
    try:
        erasure = erasures.get(account_id, erasure_id)
    except NotFound:
        return "skipped"
    if erasure["status"] == erasures.COMPLETED or int(job.get("passes", 0)) < int(erasure.get("passes", 0)):
        return "skipped"  # a redelivered message of a finished erasure, or of a pass a later one followed
    person = _person(account_id, job)
    job = {**job, "addresses": sorted(person.addresses), "ids": sorted(person.ids)}
    scrubber = Scrubber(person, lambda rid: erased_id(account_id, rid))
    counts: Counts = {}
    waiting, sending = int(job.get("waiting", 0)), bool(job.get("sending", False))  # from before a continuation
    for index in range(int(job.get("step", 0)), len(STEPS)):
        if time_left() < MARGIN_SECONDS:
            erasures.record_run(account_id, erasure_id, erasures.RUNNING, counts, step=STEPS[index])
            erasures.send_job({**job, "step": index, "waiting": waiting, "sending": sending})
            return "continued"
        step = STEPS[index]
        if step == "lists":
            _lists(account_id, person, counts, job)
        elif step == "deliveries":
            waiting += _deliveries(account_id, scrubber, counts)
            running = any(c.get("status") == "running" for c in erasures.campaigns(account_id))
            sending = running and int(job.get("passes", 0)) < SENDING_PASSES
        elif step == "suppressions":
            _suppressions(account_id, person, job, counts)
        elif step == "caps":
            _caps(account_id, person, counts)
            _conversations(account_id, person, counts)
        elif step == "webhook_deliveries":
            _webhook_log(account_id, scrubber, counts)
        else:
            _objects(account_id, scrubber, set(job.get("lists_found") or []), counts)
    if waiting or sending:
        delay = min(900, get_settings().erasure_wait_seconds)
        passes = int(job.get("passes", 0)) + 1
        erasures.record_run(
            account_id, erasure_id, erasures.WAITING, counts, waiting_for=waiting, sending=sending, passes=passes
        )
        erasures.send_job({**job, "step": 0, "passes": passes, "waiting": 0, "sending": False}, delay=delay)
        return "waiting"
    erasures.record_run(
        account_id, erasure_id, erasures.COMPLETED, counts, completed_at=time.time(), waiting_for=0, sending=False
    )
    logger.info("erasure completed", extra={"account": account_id, "erasure": erasure_id, "counts": counts})
    return "completed"


def _add(counts: Counts, name: str, n: int = 1) -> None:
    counts[name] = counts.get(name, 0) + n


# --- who ----------------------------------------------------------------------------------------------


def _person(account_id: str, job: dict[str, Any]) -> Person:
    """The addresses and ids to erase: as resolved by an earlier run, else found in the account's lists (the
    recipients that have the destination, or have the id, and every address they have)."""
    if "addresses" in job:
        return Person(frozenset(job["addresses"]), frozenset(job["ids"]))
    addresses = {str(job["destination"])} if job.get("destination") else set()
    ids = {str(job["recipient_id"])} if job.get("recipient_id") else set()
    found_in: set[str] = set()
    for list_id in erasures.list_ids(account_id):
        for item in _list_items(account_id, list_id):
            rid = str(item["sk"]).removeprefix(keys.RECIPIENT_PREFIX)
            mine = {str(d["address"]) for d in item.get("destinations") or []}
            if rid in ids or Person(frozenset(addresses), frozenset()).has_any(mine):
                ids.add(rid)
                addresses |= mine
                found_in.add(list_id)
    job["lists_found"] = sorted(found_in)
    if job.get("destination"):
        ids.add(str(job["destination"]))  # a recipient with no id of their own goes by their first address
    return Person(frozenset(addresses), frozenset(ids))


def _list_items(account_id: str, list_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for bucket in range(keys.LIST_BUCKETS):
        found += erasures.partition(keys.list_bucket_pk(account_id, list_id, bucket), prefix=keys.RECIPIENT_PREFIX)
    return found


# --- the steps ----------------------------------------------------------------------------------------


def _lists(account_id: str, person: Person, counts: Counts, job: dict[str, Any]) -> None:
    found_in = set(job.get("lists_found") or [])
    for list_id in erasures.list_ids(account_id):
        try:
            generation = lists.generation_of(lists.get_list(account_id, list_id))
        except NotFound:
            continue
        for item in _list_items(account_id, list_id):
            rid = str(item["sk"]).removeprefix(keys.RECIPIENT_PREFIX)
            mine = {str(d["address"]) for d in item.get("destinations") or []}
            if rid not in person.ids and not person.has_any(mine):
                continue
            found_in.add(list_id)
            if int(item.get("gen", 0)) == generation:
                try:  # the count (and field counts) go down with it, once
                    list_items.delete_item(account_id, list_id, rid, generation)
                    _add(counts, "list_items")
                except NotFound:
                    pass
            elif erasures.delete(str(item["pk"]), str(item["sk"])):  # a cleared generation's, not counted
                _add(counts, "list_items")
        for upload in erasures.partition(keys.list_pk(account_id, list_id), prefix="U#"):
            upload_id = str(upload["sk"]).removeprefix("U#")
            if "#" in upload_id:
                continue  # an object marker or a segment: no row of anyone
            for row in erasures.partition(f"{keys.list_pk(account_id, list_id)}#U#{upload_id}"):
                mentioned = person.mentioned_in(json.dumps(row, default=str))
                if mentioned and erasures.delete(str(row["pk"]), str(row["sk"])):
                    _add(counts, "upload_rejected_rows")
    job["lists_found"] = sorted(found_in)


def _deliveries(account_id: str, scrubber: Scrubber, counts: Counts) -> int:
    """Replace the person's finished deliveries by anonymised copies; how many are still under way."""
    person, table, waiting = scrubber.person, erasures.deliveries_table(), 0
    for campaign in erasures.campaigns(account_id):
        every = segments.is_every(campaign)  # its messages are keyed `<id>/<slot>` (decision 49)
        for bucket in range(int(campaign.get("buckets", 1))):
            for item in erasures.partition(keys.delivery_pk(str(campaign["pk"]), bucket), table=table):
                rid = str(item["sk"])
                owner = segments.split_key(rid)[0] if every else rid
                if owner not in person.ids and not person.mentioned_in(json.dumps(item, default=str)):
                    continue
                if item.get("state") not in FINAL or item.get("due_at") is not None:
                    waiting += 1
                    continue
                for uuid in _provider_ids(item):
                    for receipt in erasures.partition(f"RECEIPT#{uuid}"):
                        if erasures.delete(str(receipt["pk"]), str(receipt["sk"])):
                            _add(counts, "receipts")
                copy = scrubber.delivery(item, time.time())
                if every:  # the message stays the erased person's message for its segment
                    copy["sk"] = segments.delivery_key(scrubber.rename(owner), segments.split_key(rid)[1])
                # Put over a copy an earlier run made before the original changed (a late receipt) and stayed.
                erasures.put(copy, table)
                unchanged = {
                    "expression": "#st = :st AND attempt = :at",
                    "values": {":st": item["state"], ":at": item.get("attempt", 0)},
                    "names": {"#st": "state"},
                }
                if "attempt" not in item:
                    unchanged = {"expression": "#st = :st", "values": {":st": item["state"]}, "names": {"#st": "state"}}
                if erasures.delete(str(item["pk"]), rid, table=table, condition=unchanged):
                    _add(counts, "deliveries")
                else:
                    waiting += 1  # it changed meanwhile (a late receipt): the next run takes it
    return waiting


def _provider_ids(item: dict[str, Any]) -> set[str]:
    found = {str(item["provider_message_id"])} if item.get("provider_message_id") else set()
    found |= {str(h["provider_message_id"]) for h in item.get("history") or [] if h.get("provider_message_id")}
    return found


def _scopes_of(address: str, channel: str) -> tuple[str, ...]:
    """The scopes an erasure suppresses an address in: the channel's (or all), those an address of its kind
    is sent on (an email is suppressed for email only, a number for the rest)."""
    scopes = scopes_for(channel)
    if "@" in address:
        return tuple(s for s in scopes if s == "email")
    return tuple(s for s in scopes if s != "email")


def _suppressions(account_id: str, person: Person, job: dict[str, Any], counts: Counts) -> None:
    for address in sorted(person.addresses):
        changed = suppressions.anonymise(account_id, SCOPES, address)
        _add(counts, "suppressions_anonymised", changed)
        if job.get("suppress", True):
            scopes = _scopes_of(address, str(job.get("channel") or "all"))
            added = suppressions.add(account_id, scopes, address, "erasure")
            _add(counts, "suppressions_added", added)


def _caps(account_id: str, person: Person, counts: Counts) -> None:
    categories = {caps.ALL_CATEGORIES, "transactional"} | {
        str(c["category"]) for c in erasures.campaigns(account_id) if c.get("category")
    }
    for address in sorted(person.addresses):
        for category in sorted(categories):
            if erasures.delete(keys.cap_pk(account_id, category, address), keys.CAP):
                _add(counts, "caps")


def _conversations(account_id: str, person: Person, counts: Counts) -> None:
    """Who the account last messaged from each of its numbers (decision 45) and when a person last wrote to
    one on WhatsApp (decision 46): both keyed by the address."""
    registered, after = [], None
    while True:
        page, after = numbers.numbers_page(account_id, after=after, limit=100)
        registered += [str(item["number"]) for item in page]
        if after is None:
            break
    for number in registered:
        for address in sorted(person.addresses):
            if erasures.delete(keys.conversation_pk(account_id, number), address):
                _add(counts, "conversations")
            if erasures.delete(keys.session_pk(account_id, number), address):
                _add(counts, "whatsapp_sessions")


def _event(scrubber: Scrubber, event: Any) -> Any:
    """An event without the person: ids renamed, addresses cut, and the text of a message they sent dropped."""
    if not isinstance(event, dict) or not scrubber.person.mentioned_in(json.dumps(event, default=str)):
        return event
    cleaned = scrubber.value(event)
    data = cleaned.get("data")
    if isinstance(data, dict) and "text" in data:
        cleaned["data"] = {**data, "text": ERASED}
    return cleaned


def _webhook_log(account_id: str, scrubber: Scrubber, counts: Counts) -> None:
    for endpoint in erasures.partition(keys.webhooks_pk(account_id)):
        for item in erasures.partition(keys.webhook_deliveries_pk(account_id, str(endpoint["sk"]))):
            if not scrubber.person.mentioned_in(json.dumps(item, default=str)):
                continue
            try:
                payload = json.dumps(_event(scrubber, json.loads(str(item.get("payload") or "null"))))
            except ValueError:
                payload = scrubber.text(str(item.get("payload")))
            cleaned = {**scrubber.value({k: v for k, v in item.items() if k not in ("pk", "sk", "payload")})}
            new = {**cleaned, "pk": item["pk"], "sk": scrubber.text(str(item["sk"])), "payload": payload}
            if new["sk"] != item["sk"]:
                erasures.put_new(new)
                erasures.delete(str(item["pk"]), str(item["sk"]))
                _add(counts, "webhook_deliveries")
            elif erasures.replace(new, {"updated_at": item.get("updated_at")}):
                _add(counts, "webhook_deliveries")


def _objects(account_id: str, scrubber: Scrubber, lists_found: set[str], counts: Counts) -> None:
    for key in list(erasures.object_keys(account_id)):
        body, content_type = erasures.read_object(key)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            list_id = key.split("/")[2] if key.count("/") >= 3 else ""
            if key.startswith("uploads/") and list_id in lists_found:
                erasures.delete_object(key)  # a spreadsheet the person was read from: not rewritten, removed
                _add(counts, "upload_objects_removed")
            continue
        if not scrubber.person.mentioned_in(text):
            continue
        if key.startswith("uploads/"):
            # Not rewritten: a new object under uploads/ is a new file to ingest (the S3 notification). The
            # file was ingested into the list already; the upload's item keeps its counts.
            erasures.delete_object(key)
            _add(counts, "upload_objects_removed")
            continue
        if key.endswith(".jsonl"):
            events = [_event(scrubber, json.loads(line)) for line in text.splitlines() if line]
            new = "".join(json.dumps(event, separators=(",", ":")) + "\n" for event in events)
            kind = "event_objects"
        elif key.endswith(".csv") or "csv" in content_type:
            new, kind = _csv(text, scrubber), "export_objects" if key.startswith("exports/") else "rejected_row_objects"
        else:
            new, kind = scrubber.text(text), "other_objects"
        if new != text:
            erasures.put_object(key, new.encode("utf-8"), content_type)
            _add(counts, kind)


def _csv(text: str, scrubber: Scrubber) -> str:
    """An outcome export's rows anonymised (recipient id renamed, address cut: the outcomes still add up);
    in any other CSV (a list export, an uploaded file, rejected rows) the person's rows removed."""
    rows = list(csv.reader(io.StringIO(text)))
    outcomes = bool(rows) and rows[0] == CAMPAIGN_COLUMNS
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for number, row in enumerate(rows):
        if number and any(scrubber.text(cell) != cell for cell in row):
            if not outcomes:
                continue
            row = [scrubber.text(cell) for cell in row]
        writer.writerow(row)
    return out.getvalue()
