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
    pool under one lock: each client of the set is small and keeps all of its connections. They share one SSL
    context (22 ms of CPU each to make)."""
    import ssl

    import httpx

    from chalicelib.channels.clients import ClientSet

    made: list[tuple[httpx.Limits, ssl.SSLContext]] = []

    def make(limits: httpx.Limits, verify: ssl.SSLContext) -> httpx.Client:
        made.append((limits, verify))
        return httpx.Client(limits=limits, verify=verify)

    clients = ClientSet(make, connections=256)
    assert [(limits.max_connections, limits.max_keepalive_connections) for limits, _ in made] == [(32, 32)] * 8
    assert len({id(verify) for _, verify in made}) == 1
    assert [clients.next() for _ in range(16)] == clients.clients * 2


def test_fifty_threads_asking_for_the_adapter_at_once_get_one_made_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first sends of an invocation ask for the adapter together: with an lru_cache each built its own
    (and its clients), seconds of CPU before the first request left."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from chalicelib.channels import vonage

    monkeypatch.setenv("VONAGE_BASE_URL", "http://127.0.0.1:3333")
    get_settings.cache_clear()
    built: list[object] = []
    real = vonage.VonageMessages.__init__
    start = threading.Barrier(50)

    def counted(self: object, *args: object) -> None:
        built.append(self)
        real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(vonage.VonageMessages, "__init__", counted)

    def ask(_: int) -> object:
        start.wait()
        return channel_for("sms")

    with ThreadPoolExecutor(50) as pool:
        adapters = set(map(id, pool.map(ask, range(50))))
    get_settings.cache_clear()
    assert len(built) == 1 and adapters == {id(built[0])}
