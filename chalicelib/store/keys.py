"""Key shapes. Every key of an account's data starts with its account id (tenancy by key).

Hot keys are spread: a campaign's deliveries over `bucket_count(rate)` partition keys, a list's
recipients over LIST_BUCKETS, each recipient always in the same bucket (a stable hash of its id).
"""

from __future__ import annotations

import hashlib
import math
import secrets

META = "META"
CAP = "CAP"
RECIPIENT_PREFIX = "R#"
# A bucket takes at most this many recipients a second: ~2 writes each (claim, outcome) plus retries,
# well under DynamoDB's 1,000 write units per partition and under the team's 500 writes/s target.
RECIPIENTS_PER_BUCKET_PER_SECOND = 150
# A list's rows are written by uploads at a few thousand a second at most: 8 keys keep each under 500/s.
LIST_BUCKETS = 8


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def api_key_pk(api_key: str) -> str:
    return f"KEY#{hashlib.sha256(api_key.encode()).hexdigest()}"


def account_pk(account_id: str) -> str:
    return account_id


def bucket_of(recipient_id: str, buckets: int) -> int:
    """A recipient's bucket: stable across processes (not Python's salted hash())."""
    digest = hashlib.blake2b(recipient_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % max(1, buckets)


def bucket_count(rate_per_second: float) -> int:
    return max(1, math.ceil(rate_per_second / RECIPIENTS_PER_BUCKET_PER_SECOND))


def list_pk(account_id: str, list_id: str) -> str:
    """The list's own item (META)."""
    return f"{account_id}#L#{list_id}"


def list_bucket_pk(account_id: str, list_id: str, bucket: int) -> str:
    return f"{list_pk(account_id, list_id)}#{bucket}"


def list_recipient_pk(account_id: str, list_id: str, recipient_id: str) -> str:
    return list_bucket_pk(account_id, list_id, bucket_of(recipient_id, LIST_BUCKETS))


def recipient_sk(phone: str) -> str:
    return f"{RECIPIENT_PREFIX}{phone}"


def campaign_pk(account_id: str, campaign_id: str) -> str:
    """The campaign's own item (definition, status, counters)."""
    return f"{account_id}#C#{campaign_id}"


def delivery_pk(campaign: str, bucket: int) -> str:
    """Partition key of the deliveries of one bucket of campaign `campaign` (a campaign_pk)."""
    return f"{campaign}#{bucket}"


def split_delivery_pk(pk: str) -> tuple[str, int]:
    """(campaign_pk, bucket) of a delivery's partition key."""
    campaign, _, bucket = pk.rpartition("#")
    return campaign, int(bucket)


def split_campaign_pk(pk: str) -> tuple[str, str]:
    account_id, _, campaign_id = pk.partition("#C#")
    return account_id, campaign_id


def lists_index_pk(account_id: str) -> str:
    """The account's list index: one item per list, sorted by creation time (GET /v1/lists)."""
    return f"{account_id}#LISTS"


def list_index_sk(created_ms: int, list_id: str) -> str:
    return f"L#{created_ms:015d}#{list_id}"


def campaigns_index_pk(account_id: str) -> str:
    """The account's campaign index: one item per campaign, sorted by creation time (GET /v1/campaigns)."""
    return f"{account_id}#CAMPAIGNS"


# The latest creation time an index sort key can hold (15 digits of milliseconds).
MAX_INDEX_MS = 10**15 - 1


def campaign_index_sk(created_ms: int, campaign_id: str) -> str:
    return f"C#{created_ms:015d}#{campaign_id}"


def export_pk(account_id: str, export_id: str) -> str:
    """An export job's own item."""
    return f"{account_id}#X#{export_id}"


def export_object_key(account_id: str, export_id: str) -> str:
    """Where an export's CSV is written in the uploads bucket."""
    return f"exports/{account_id}/{export_id}.csv"


def cap_pk(account_id: str, category: str, destination: str) -> str:
    """A frequency cap's counter: one per (account, category, destination). The category holds no '#', so
    a destination that does (an email's local part may) cannot make two caps share a key."""
    return f"{account_id}#CAP#{category}#{destination}"


def actions_pk(account_id: str) -> str:
    """The account's HTTP actions: one item per action (GET /v1/actions)."""
    return f"{account_id}#ACTIONS"


def brands_pk(account_id: str) -> str:
    """The account's email brands: one item per brand (GET /v1/brands)."""
    return f"{account_id}#BRANDS"


def templates_pk(account_id: str) -> str:
    """The account's templates: one item per template (GET /v1/templates)."""
    return f"{account_id}#TEMPLATES"


def template_versions_pk(account_id: str, template_id: str) -> str:
    """A template's versions: one item each, `V#<version>`."""
    return f"{account_id}#T#{template_id}"


def suppression_pk(account_id: str, scope: str) -> str:
    """An account's suppressions in one scope (sms, whatsapp.marketing, email, ...): one item per destination."""
    return f"{account_id}#SUP#{scope}"


def numbers_pk(account_id: str) -> str:
    """The account's inbound numbers: one item per number (GET /v1/numbers)."""
    return f"{account_id}#NUMBERS"


def number_owner_pk(number: str) -> str:
    """Which account a number belongs to: inbound messages and receipts name the number, not the account.
    A look-up key like `KEY#`, so it cannot start with an account id."""
    return f"NUMBER#{number}"


def campaign_owner_pk(campaign_id: str) -> str:
    """Which account a campaign belongs to: a delivery receipt names the campaign (in its `client_ref`)."""
    return f"CAMPAIGN#{campaign_id}"


def webhooks_pk(account_id: str) -> str:
    """The account's webhook endpoints: one item per endpoint (GET /v1/webhooks)."""
    return f"{account_id}#WEBHOOKS"


def webhook_deliveries_pk(account_id: str, endpoint_id: str) -> str:
    """An endpoint's delivery log: one item per event sent to it, `<occurred ms>-<event id>`."""
    return f"{account_id}#WHD#{endpoint_id}"


def reply_handlers_pk(account_id: str) -> str:
    """The account's reply handlers: one item per handler (GET /v1/reply-handlers)."""
    return f"{account_id}#HANDLERS"


def conversation_pk(account_id: str, number: str) -> str:
    """Who the account last messaged from one of its numbers: one item per destination, naming the campaign
    and recipient a reply from that destination to that number answers."""
    return f"{account_id}#CONV#{number}"


def session_pk(account_id: str, number: str) -> str:
    """When each person last messaged one of the account's numbers on WhatsApp (decision 46): one item per
    person, opening their 24-hour window for free-form (session) messages from that number."""
    return f"{account_id}#WASESSION#{number}"
