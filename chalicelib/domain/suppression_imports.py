"""Suppression imports (decision 44): a CSV or XLSX file of destinations to suppress, uploaded through the
uploads path (presigned PUT -> S3 notification -> ingest worker) like a list's file. Pure.

The file has a `destination` column (also named `address`, `email` or `phone`) and may have a `channel`
column; a row without a channel takes the import's. Each row is checked as `POST /v1/suppressions` checks
its body: the destination is an email address for `email` (or an `all` row holding an `@`), else a phone
number in E.164; the channel is one of SUPPRESSION_CHANNELS. A bad row is rejected with its line number,
the field and the reason; the others go in."""

from __future__ import annotations

import re
from dataclasses import dataclass

from chalicelib.domain.recipients import AddressError, RowError
from chalicelib.domain.responses import SUPPRESSION_CHANNELS, scopes_for, suppressed_destination
from chalicelib.domain.tabular import FileProblem

# The pseudo list an import's upload lives under: `uploads/<account>/suppressions/<upload id>/<file>`. List ids
# are made by the service (`lst_...`), so no list is named this.
SUPPRESSIONS_TARGET = "suppressions"
DESTINATION_NAMES = ("destination", "address", "email", "phone")
CHANNEL_NAMES = ("channel",)


@dataclass(frozen=True)
class SuppressionColumns:
    destination: str
    channel: str | None


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.lower())


def columns(header: list[str]) -> SuppressionColumns:
    """The columns holding the destination and the channel; FileProblem bad_mapping without a destination."""
    by_key = {_key(name): name for name in reversed(header)}
    destination = next((by_key[name] for name in DESTINATION_NAMES if name in by_key), None)
    if destination is None:
        raise FileProblem(
            "bad_mapping", f"the file needs a destination column (named one of: {', '.join(DESTINATION_NAMES)})"
        )
    channel = next((by_key[name] for name in CHANNEL_NAMES if name in by_key), None)
    return SuppressionColumns(destination, channel)


def suppression_row(
    found: SuppressionColumns, header: list[str], values: list[str], default_channel: str | None
) -> tuple[str, tuple[str, ...]]:
    """The row's destination (normalised) and the scopes it is suppressed in; RowError naming the column."""
    cells = dict(zip(header, values, strict=False))
    raw_channel = (cells.get(found.channel, "") if found.channel else "").strip().lower()
    channel = raw_channel or default_channel
    if not channel:
        raise RowError("invalid_row", "channel", "no channel: give the row one, or the import a channel")
    if channel not in SUPPRESSION_CHANNELS:
        raise RowError(
            "invalid_channel", "channel", f"channel '{channel[:40]}': one of {', '.join(SUPPRESSION_CHANNELS)}"
        )
    raw = cells.get(found.destination, "").strip()
    if not raw:
        raise RowError("invalid_row", found.destination, "no destination")
    try:
        destination = suppressed_destination(raw, channel)
    except AddressError as exc:
        raise RowError(exc.reason, found.destination, str(exc)) from None
    return destination, scopes_for(channel)
