"""The outbound request guard (chalicelib/channels/outbound.py) against a matrix of hostile URLs, DNS that
answers differently on a second lookup, redirects into the private network and endless answers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from chalicelib.channels.outbound import MAX_REDIRECTS, Guard, RefusedUrl, call

pytestmark = pytest.mark.unit

PUBLIC = "93.184.215.14"


def resolver(answers: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        return answers.get(host, [PUBLIC])

    return resolve


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/hook", "only https"),
        ("ftp://example.com/x", "only https"),
        ("file:///etc/passwd", "only https"),
        ("https:///nohost", "no host"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://127.0.0.1/", "loopback"),
        ("https://127.1/", "loopback"),  # short form, as some resolvers read it
        ("https://localhost/", "loopback"),
        ("https://0.0.0.0/", "unspecified"),
        ("https://10.0.0.5/", "private"),
        ("https://172.16.3.4/", "private"),
        ("https://192.168.1.1:8443/", "private"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://100.64.0.1/", "shared"),
        ("https://224.0.0.1/", "multicast"),
        ("https://240.0.0.1/", "private address|reserved"),
        ("https://[::1]/", "loopback"),
        ("https://[fd00:ec2::254]/", "private"),
        ("https://[fe80::1]/", "link-local"),
        ("https://[::ffff:127.0.0.1]/", "embedding 127.0.0.1"),
        ("https://[::ffff:169.254.169.254]/", "embedding 169.254.169.254"),
        ("https://[64:ff9b::a00:1]/", "embedding 10.0.0.1"),
        ("https://[2002:a00:1::]/", "embedding 10.0.0.1"),
        ("https://internal.example/", "private"),  # a public-looking name with a private answer
        ("https://mixed.example/", "private"),  # one private address among public ones
        ("https://[", "not a valid URL"),
    ],
)
def test_hostile_urls_are_refused_before_any_connection(url: str, reason: str) -> None:
    guard = Guard(
        resolver=resolver(
            {
                "localhost": ["127.0.0.1"],
                "127.1": ["127.0.0.1"],
                "internal.example": ["10.1.2.3"],
                "mixed.example": [PUBLIC, "192.168.0.9"],
            }
        )
    )
    with pytest.raises(RefusedUrl, match=reason):
        guard.check(url)


def test_public_https_urls_pass_and_http_only_where_the_stage_allows_it() -> None:
    guard = Guard(resolver=resolver({}))
    assert guard.check("https://example.com/hook").address == PUBLIC
    assert guard.check("https://[2606:4700::1111]/").address == "2606:4700::1111"
    with pytest.raises(RefusedUrl):
        guard.check("http://example.com/")
    local = Guard(allow_http=True, allowed_hosts=frozenset({"127.0.0.1"}), resolver=resolver({}))
    assert local.check("http://127.0.0.1:8080/sink").address == "127.0.0.1"
    with pytest.raises(RefusedUrl, match="private"):
        local.check("http://10.0.0.1/")  # allowing one host opens nothing else


def recording(
    answer: httpx.Response | None = None, *, answers: dict[str, httpx.Response] | None = None
) -> tuple[httpx.Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if answers is not None:
            return answers[request.url.path]
        return answer or httpx.Response(200, json={"ok": True})

    return httpx.Client(transport=httpx.MockTransport(handle)), seen


def test_the_host_is_resolved_once_and_the_connection_pinned_to_that_address() -> None:
    """DNS rebinding: the name answers a public address to the check, then a private one. The request goes
    to the address checked, under the name (Host header and TLS SNI)."""
    answers = iter([[PUBLIC], ["127.0.0.1"]])
    asked: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return next(answers)

    client, seen = recording()
    answer = call(client, Guard(resolver=rebinding), "POST", "https://rebind.example/hook?a=1", content=b"{}")
    assert answer.status == 200 and answer.json() == {"ok": True}
    assert asked == ["rebind.example"], "resolved once"
    (request,) = seen
    assert (request.url.host, request.url.port, request.url.raw_path) == (PUBLIC, None, b"/hook?a=1")
    assert request.headers["host"] == "rebind.example"
    assert request.extensions["sni_hostname"] == "rebind.example"


def test_each_redirect_is_checked_as_a_new_url() -> None:
    client, seen = recording(
        answers={
            "/start": httpx.Response(302, headers={"location": "https://next.example/second"}),
            "/second": httpx.Response(307, headers={"location": "https://169.254.169.254/latest/meta-data/"}),
        }
    )
    with pytest.raises(RefusedUrl, match="link-local"):
        call(client, Guard(resolver=resolver({})), "GET", "https://start.example/start")
    assert [r.url.path for r in seen] == ["/start", "/second"], "the metadata address was never called"


def test_redirects_are_bounded() -> None:
    client, seen = recording(httpx.Response(302, headers={"location": "/again"}))
    with pytest.raises(RefusedUrl, match=f"more than {MAX_REDIRECTS} redirects"):
        call(client, Guard(resolver=resolver({})), "GET", "https://loop.example/")
    assert len(seen) == MAX_REDIRECTS + 1


def test_an_endless_answer_is_cut_at_the_bound() -> None:
    def endless() -> Iterator[bytes]:
        while True:
            yield b"x" * 4096

    client, _ = recording(httpx.Response(200, content=endless()))
    answer = call(client, Guard(resolver=resolver({})), "GET", "https://big.example/", max_response_bytes=10_000)
    assert answer.truncated and len(answer.body) == 10_000
