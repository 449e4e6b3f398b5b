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
    for adapter, url in ((first, "http://127.0.0.1:1111"), (second, "http://127.0.0.1:2222")):
        clients = adapter._clients.clients  # type: ignore[attr-defined]
        assert all(str(client.base_url).startswith(url) for client in clients)


def test_a_channel_s_clients_are_taken_in_turn_and_keep_alive_every_connection_they_may_open() -> None:
    """httpcore closes idle connections beyond `max_keepalive_connections` on every request, and walks its whole
    pool under one lock: each client of the set is small and keeps all of its connections."""
    import httpx

    from chalicelib.channels.clients import ClientSet

    made: list[httpx.Limits] = []

    def make(limits: httpx.Limits) -> httpx.Client:
        made.append(limits)
        return httpx.Client(limits=limits)

    clients = ClientSet(make, connections=256)
    assert [(limits.max_connections, limits.max_keepalive_connections) for limits in made] == [(32, 32)] * 8
    assert [clients.next() for _ in range(16)] == clients.clients * 2
