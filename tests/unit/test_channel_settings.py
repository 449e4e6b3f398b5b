"""The channel adapter follows the settings: a stack restarted in one process (the bench, the demo)
sends to its own provider, not to the one the first stack had."""

from __future__ import annotations

import pytest

from chalicelib.channels import channel_for
from chalicelib.settings import get_settings

pytestmark = pytest.mark.unit


def test_the_adapter_follows_a_new_provider_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VONAGE_BASE_URL", "http://127.0.0.1:1111")
    get_settings.cache_clear()
    first = channel_for("sms")
    monkeypatch.setenv("VONAGE_BASE_URL", "http://127.0.0.1:2222")
    get_settings.cache_clear()
    second = channel_for("sms")
    get_settings.cache_clear()
    assert str(first._client.base_url).startswith("http://127.0.0.1:1111")  # type: ignore[attr-defined]
    assert str(second._client.base_url).startswith("http://127.0.0.1:2222")  # type: ignore[attr-defined]
