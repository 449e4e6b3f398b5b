"""The dispatch queue: one message carries a chunk of recipients, sent ten messages per request."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.settings import get_settings
from chalicelib.store import aws

SQS_BATCH = 10


class QueueSendError(RuntimeError):
    pass


def send_chunks(chunks: list[tuple[dict[str, Any], int]]) -> None:
    """Send (body, delay_seconds) pairs; SDK retries cover throttling, a failed entry is resent once."""
    url = get_settings().dispatch_queue_url
    for start in range(0, len(chunks), SQS_BATCH):
        entries = [
            {"Id": str(i), "MessageBody": json.dumps(body, separators=(",", ":")), "DelaySeconds": delay}
            for i, (body, delay) in enumerate(chunks[start : start + SQS_BATCH])
        ]
        for _ in range(2):
            answer = aws.sqs().send_message_batch(QueueUrl=url, Entries=entries)
            failed = {f["Id"] for f in answer.get("Failed", [])}
            entries = [e for e in entries if e["Id"] in failed]
            if not entries:
                break
        if entries:
            raise QueueSendError(f"{len(entries)} dispatch chunks could not be queued")
