"""The fault suite runs the real handlers against moto, driven round by round like the event source
mappings would (tests/faults/harness.py), with faults injected where production meets them."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from infra.local.fake_provider import FakeProvider
from tests.faults.harness import Harness
from tests.faults.webhooks import SIGNATURE_SECRET, EventBridge
from tests.integration.conftest import api, aws_env, chalice_app, provider, tenant  # noqa: F401
from tests.utils import Api


@pytest.fixture(autouse=True)
def quick_timings(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seconds where production has tens of seconds, so faults play out within a test.

    A provider's answer gets 5 s: the handlers, moto and the fake provider share this process, and on a
    busy machine an answer the provider gave at once can take over a second to be read (3 to 8 of 300 sends
    `unknown` with 1 s, beside two CPU hogs; one such failure in a CI run). A test that makes the provider
    time out, or whose invocations have only seconds to live, marks a shorter one:
    `@pytest.mark.provider_timeout(1)`."""
    marker = request.node.get_closest_marker("provider_timeout")
    for name, value in {
        "PROVIDER_TIMEOUT_SECONDS": str(marker.args[0] if marker else 5),
        "DISPATCH_DEADLINE_MARGIN_SECONDS": "0.5",
        "STATUS_RECHECK_SECONDS": "0.2",
        "RECOUNT_QUIET_SECONDS": "0",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True)
def moto_as_the_local_stack_runs_it() -> Iterator[None]:
    """The local server's patches, in this process too (infra/local/moto_server.py). Unpatched, two
    concurrent writes can take one stream sequence number, and a reader then re-reads the last record for
    ever (seen in CI: the harness's stream guard tripped in the failover test)."""
    from infra.local.moto_server import patched_moto

    with patched_moto():
        yield


@pytest.fixture
def harness(tenant: Api, aws_env: dict[str, str], chalice_app: object, provider: object) -> Iterator[Harness]:  # noqa: F811
    from chalicelib.settings import get_settings

    get_settings.cache_clear()
    yield Harness(tenant, aws_env, chalice_app, provider)  # type: ignore[arg-type]


@pytest.fixture
def webhooks(monkeypatch: pytest.MonkeyPatch, aws_env: dict[str, str], provider: FakeProvider) -> Iterator[EventBridge]:  # noqa: F811
    """The provider's inbound and status callbacks, posted signed through the bridge to the real routes."""
    boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="vonage/signature-secret", SecretString=SIGNATURE_SECRET
    )
    provider.signature_secret = SIGNATURE_SECRET
    bridge = EventBridge()
    provider.configure(
        status_webhook_url=f"{bridge.url}/v1/webhooks/vonage/status",
        inbound_webhook_url=f"{bridge.url}/v1/webhooks/vonage/inbound",
    )
    monkeypatch.setenv("VONAGE_SIGNATURE_SECRET", "vonage/signature-secret")
    from chalicelib.settings import get_settings

    get_settings.cache_clear()
    yield bridge
    bridge.close()
