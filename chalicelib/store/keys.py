"""Key shapes. Every key of an account's data starts with its account id (tenancy by key)."""

from __future__ import annotations

import hashlib
import secrets

META = "META"
RECIPIENT_PREFIX = "R#"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def api_key_pk(api_key: str) -> str:
    return f"KEY#{hashlib.sha256(api_key.encode()).hexdigest()}"


def account_pk(account_id: str) -> str:
    return account_id


def list_pk(account_id: str, list_id: str) -> str:
    return f"{account_id}#L#{list_id}"


def recipient_sk(phone: str) -> str:
    return f"{RECIPIENT_PREFIX}{phone}"


def campaign_pk(account_id: str, campaign_id: str) -> str:
    """Also the partition key of the campaign's deliveries (one item per recipient)."""
    return f"{account_id}#C#{campaign_id}"


def split_campaign_pk(pk: str) -> tuple[str, str]:
    account_id, _, campaign_id = pk.partition("#C#")
    return account_id, campaign_id
