"""Idempotency-Key on POST, kept by Powertools' idempotency utility in its own table for 24 hours.

Same key and body: the first response again. Same key, other body: IdempotencyKeyReused (422).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from chalicelib.domain.errors import Conflict, IdempotencyKeyReused
from chalicelib.settings import get_settings
from chalicelib.store import aws

Response = dict[str, Any]
TTL_SECONDS = 24 * 3600


_CONFIG = IdempotencyConfig(
    event_key_jmespath="[account, method, path, key]",
    payload_validation_jmespath="body",
    expires_after_seconds=TTL_SECONDS,
    raise_on_no_idempotency_key=True,
)


@lru_cache(maxsize=1)
def _runner() -> Callable[..., Response]:
    layer = DynamoDBPersistenceLayer(table_name=get_settings().idempotency_table, boto3_client=aws.dynamodb())
    config = _CONFIG

    @idempotent_function(data_keyword_argument="request", persistence_store=layer, config=config)
    def run(request: dict[str, Any], produce: Callable[[], Response]) -> Response:
        return produce()

    return run


aws.on_reset(_runner.cache_clear)


def once(
    *, account: str, method: str, path: str, key: str, body: Any, produce: Callable[[], Response], context: Any = None
) -> Response:
    request = {"account": account, "method": method, "path": path, "key": key, "body": body}
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        # Lets an in-progress record expire with the invocation that wrote it.
        _CONFIG.register_lambda_context(context)
    try:
        return _runner()(request=request, produce=produce)
    except IdempotencyValidationError:
        raise IdempotencyKeyReused(detail="this Idempotency-Key was used with a different request body") from None
    except IdempotencyAlreadyInProgressError:
        raise Conflict(detail="a request with this Idempotency-Key is still in progress") from None
