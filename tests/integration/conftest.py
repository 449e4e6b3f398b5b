"""Integration fixtures: moto's mock_aws with the resources of infra/template.json, the Chalice test
client, and the fake provider as a real HTTP server on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from chalicelib.store import aws
from infra.local import moto_ses
from infra.local.fake_provider import FakeProvider
from infra.local.resources import create_resources
from tests.utils import ADMIN_TOKEN, Api


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(credentials=("key", "secret")) as fake:  # as aws_env configures the adapter
        yield fake


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, provider: FakeProvider) -> Iterator[dict[str, str]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "PAGE_TOKEN_SECRET": "test-secret",
        "VONAGE_BASE_URL": provider.base_url,
        "VONAGE_API_KEY": "key",
        "VONAGE_API_SECRET": "secret",
        "OUTBOUND_ALLOW_HTTP": "true",
        "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    moto_ses.install()
    moto_ses.reset()
    with mock_aws():
        env = create_resources(prefix="it")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        aws.reset_clients()
        yield env
    aws.reset_clients()


@pytest.fixture
def chalice_app(aws_env: dict[str, str]) -> Any:
    import app

    return app


@pytest.fixture
def api(chalice_app: Any) -> Iterator[Api]:
    from chalice.test import Client

    with Client(chalice_app.app, stage_name="local") as client:
        yield Api(client)


@pytest.fixture
def tenant(api: Api) -> Api:
    return api.new_account()


@pytest.fixture
def atomic_moto() -> Iterator[None]:
    """moto's writes made atomic, as the local server makes them (infra/local/moto_server.py): a test that
    writes from several threads at once needs them, since DynamoDB's conditional writes are atomic and
    moto's own are not (two threads could both find a pacing ledger idle and take the same span)."""
    from infra.local.moto_server import patched_moto

    with patched_moto():
        yield
