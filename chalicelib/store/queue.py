"""The dispatch and release queues. A dispatch message carries a chunk of recipients; messages are sent
ten per request, and every message and request is kept under SQS's size limit."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.settings import get_settings
from chalicelib.store import aws

SQS_BATCH = 10
# SQS's limit for one message and for the sum of a SendMessageBatch (256 KiB; larger quotas are opt-in).
SQS_MAX_BYTES = 262_144
# Room left for the message's attributes and the batch entry's envelope.
SQS_BYTES_MARGIN = 2_048


class QueueSendError(RuntimeError):
    def __init__(self, message: str, sent: int) -> None:
        super().__init__(message)
        self.sent = sent  # how many of the messages went out, in order, before the failure


def encode(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


def fits(body: str) -> bool:
    return len(body.encode()) <= SQS_MAX_BYTES - SQS_BYTES_MARGIN


def send_messages(url: str, messages: list[tuple[str, int]]) -> None:
    """Send (body, delay_seconds) pairs in order, in batches of at most ten entries and SQS_MAX_BYTES.

    SDK retries cover throttling; a failed entry is resent once. On failure, QueueSendError says how
    many messages (a prefix of `messages`) went out, so the caller can keep that progress.
    """
    sent = 0
    for batch in _batches(messages):
        entries = [{"Id": str(i), "MessageBody": body, "DelaySeconds": delay} for i, (body, delay) in enumerate(batch)]
        for _ in range(2):
            answer = aws.sqs().send_message_batch(QueueUrl=url, Entries=entries)
            failed = {f["Id"] for f in answer.get("Failed", [])}
            entries = [e for e in entries if e["Id"] in failed]
            if not entries:
                break
        if entries:
            first_failed = min(int(str(e["Id"])) for e in entries)
            raise QueueSendError(f"{len(entries)} messages could not be queued", sent + first_failed)
        sent += len(batch)


def _batches(messages: list[tuple[str, int]]) -> list[list[tuple[str, int]]]:
    batches: list[list[tuple[str, int]]] = []
    size = 0
    for message in messages:
        length = len(message[0].encode()) + 100
        if not batches or len(batches[-1]) == SQS_BATCH or size + length > SQS_MAX_BYTES - SQS_BYTES_MARGIN:
            batches.append([])
            size = 0
        batches[-1].append(message)
        size += length
    return batches


def send_chunks_encoded(messages: list[tuple[str, int]]) -> None:
    send_messages(get_settings().dispatch_queue_url, messages)


def send_release_jobs(campaign_pks: list[str]) -> None:
    """One release job per campaign: each campaign is released by its own invocation."""
    send_messages(get_settings().release_queue_url, [(encode({"campaign": pk}), 0) for pk in campaign_pks])


def make_visible(receipt_handles: list[str]) -> None:
    url = get_settings().dispatch_queue_url
    for start in range(0, len(receipt_handles), SQS_BATCH):
        entries = [
            {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
            for i, handle in enumerate(receipt_handles[start : start + SQS_BATCH])
        ]
        aws.sqs().change_message_visibility_batch(QueueUrl=url, Entries=entries)
