"""Environment parsed once into a typed settings model; nothing else reads os.environ."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    stage: str = "dev"
    aws_region: str = "us-east-1"
    # Set only on the local stack: boto3 then talks to moto's server.
    aws_endpoint_url: str | None = None

    main_table: str = "bulk-main"
    deliveries_table: str = "bulk-deliveries"
    idempotency_table: str = "bulk-idempotency"
    dispatch_queue_url: str = ""
    release_queue_url: str = ""
    # Scheduled starts: EventBridge Scheduler schedules in this group send a message to the release queue
    # (its ARN), with this role.
    schedule_group: str = ""
    scheduler_role_arn: str = ""
    release_queue_arn: str = ""
    uploads_bucket: str = ""
    ingest_queue_url: str = ""
    export_queue_url: str = ""
    list_purge_queue_url: str = ""
    # Customer webhooks (decision 41): deliveries queued here; given up on ones go to the dead-letter queue.
    webhook_queue_url: str = ""
    webhook_dead_letter_queue_url: str = ""
    webhook_timeout_seconds: float = 10.0
    webhook_first_retry_seconds: float = 5.0  # then doubling: 10 s, 20 s, ... 15 minutes
    # A delivery is tried for this long (growing delays), then dead-lettered.
    webhook_retry_seconds: float = 86_400.0
    # An endpoint whose every delivery failed for this long is disabled (and the account told by the event).
    webhook_disable_after_seconds: float = 3 * 86_400.0
    # Exports: how long a download URL works, and the size of each uploaded part (S3: at least 5 MiB).
    export_url_seconds: int = 3600
    export_part_bytes: int = 8 * 1024 * 1024
    # Ingest: a CSV larger than this is cut into segments of about this size, ingested in parallel.
    ingest_segment_bytes: int = 256 * 1024 * 1024
    # A list's purge job is queued before its delete or clear, delayed past the request that queued it.
    list_purge_delay_seconds: int = 30

    admin_token: str = Field(default="", description="Bearer token that may create accounts.")
    page_token_secret: str = "change-me"
    # The key of the keyed hash (HMAC) suppressions and erasures know a destination by (decision 42); changing
    # it orphans every suppression, so it is set once per stage.
    address_key_secret: str = "change-me"
    # Erasures (decision 42): the job's queue, and how long it waits for a person's sends still under way.
    erasure_queue_url: str = ""
    erasure_wait_seconds: int = 300

    # Pacer: how far ahead each tick releases work (the schedule's period in AWS).
    release_horizon_seconds: float = 60.0
    max_chunk_size: int = 50
    # Chunks are queued this many seconds ahead of their places (dispatch's pacing ledger holds them).
    release_ahead_seconds: int = 1
    # Backpressure: released but unfinished work per campaign is bounded to this many seconds of its rate.
    release_backlog_seconds: float = 30.0

    # Dispatch: sends in flight at once within one invocation, and the time kept back before the deadline.
    dispatch_concurrency: int = 50
    dispatch_deadline_margin_seconds: float = 5.0
    # Dispatch re-reads the campaign's status this often while it sends (pause takes effect within it).
    status_recheck_seconds: float = 0.5
    # A chunk's suppressions are read again when older than this as its sends go (a STOP holds within ~2 s).
    suppression_recheck_seconds: float = 1.0
    # A chunk's span on a pacing ledger starts no sooner than this after it is taken: the chunk's first sends
    # are ready by then (their claims made), so a late start does not bunch them (decision 25).
    pacing_lead_seconds: float = 0.2

    # A recount is stored only when no delivery changed for this long (the stream has caught up by then).
    recount_quiet_seconds: float = 60.0

    # Deliveries expire (DynamoDB TTL) this long after their final outcome.
    delivery_retention_days: int = 90

    vonage_base_url: str = "https://api.nexmo.com"
    vonage_api_key: str = ""
    vonage_api_secret: str = ""
    provider_timeout_seconds: float = 15.0
    # Voice (decision 38): calls are made as a Vonage application, with a JWT signed by its private key (a PEM
    # kept in Secrets Manager under this name); its events are signed with the signature secret (likewise).
    vonage_application_id: str = ""
    vonage_private_key_secret: str = ""
    vonage_signature_secret: str = ""
    # Where the provider reaches this API (API Gateway's URL, or the local server's): the calls' event URL.
    webhook_base_url: str = ""
    # Tracked links (decision 43): where recipients follow them (`<links_base_url>/l/<token>`; a short custom
    # domain in front of the API, else WEBHOOK_BASE_URL), and the Secrets Manager name of the key they are
    # signed with (unset: a key derived from PAGE_TOKEN_SECRET, as page tokens are signed).
    links_base_url: str = ""
    link_signing_secret: str = ""
    # Names of what the service creates per account: SES configuration sets <prefix>-<stage>-<account id>,
    # action secrets <prefix>/<stage>/<account id>/actions/<action id>.
    resource_prefix: str = "bulk"
    # Where SES publishes each account's email events (decision 44): the default event bus's ARN (the only
    # bus SES publishes to). Empty: configuration sets are made without an event destination.
    ses_event_bus_arn: str = ""
    # The outbound request guard (decision 29): http and these hosts are allowed on the local stack only.
    outbound_allow_http: bool = False
    outbound_allowed_hosts: str = ""  # comma-separated host names


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
