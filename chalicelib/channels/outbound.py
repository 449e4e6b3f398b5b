"""The one way to call a URL a customer gave us (HTTP actions, the customer's webhooks): the outbound
request guard (decision 29).

- **Scheme:** https only; http only where the stage allows it (the local stack).
- **Host:** resolved once; every address it resolves to must be public, else the URL is refused. The
  request then goes to that address (the connection is pinned), with the name in `Host` and in TLS's SNI
  and certificate check, so a DNS answer that changes between the check and the connection (DNS
  rebinding) cannot move the request to a private address.
- **Refused addresses:** private, loopback, link-local (169.254.169.254, the instance metadata service),
  multicast, unspecified, reserved, shared (CGNAT 100.64.0.0/10), unique local (fd00:ec2::254, the
  metadata service over IPv6), and any IPv6 address that embeds a refused IPv4 one (IPv4-mapped,
  IPv4-compatible, NAT64, 6to4, Teredo). In short: any address that is not global.
- **Redirects:** not followed by the client; each hop is checked as a new URL, at most `MAX_REDIRECTS`.
- **Answers:** read up to `max_response_bytes`; a longer body is cut there and reported as truncated.
- **Exceptions** are named per stage: `allowed_hosts` lists hosts reachable whatever their address (the
  local fake provider and HTTP sink on 127.0.0.1).
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

MAX_REDIRECTS = 3
MAX_RESPONSE_BYTES = 64 * 1024
REDIRECTS = frozenset({301, 302, 303, 307, 308})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


class RefusedUrl(ValueError):
    """A URL the guard does not call; `reason` says why, in words a customer can act on."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{reason}: {url}")
        self.url = url
        self.reason = reason


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system's resolver gives for `host`."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise RefusedUrl(host, f"the host does not resolve ({exc.strerror})") from exc
    except (UnicodeError, ValueError) as exc:  # a name IDNA cannot encode (found by the fuzz: "Jê\x9f")
        raise RefusedUrl(host, "the host is not a valid name") from exc
    return list(dict.fromkeys(str(answer[4][0]) for answer in answers))


def refused_address(address: IPAddress) -> str | None:
    """Why a connection to `address` is refused (None: it is a public address)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            why = refused_address(embedded)
            return f"an IPv6 address embedding {embedded} ({why})" if why else None
    for test, reason in (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address (the instance metadata service is one)"),
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (address in _SHARED, "a shared (carrier-grade NAT) address"),
    ):
        if test:
            return reason
    return None if address.is_global else "not a public address"


_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or address in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 1:  # IPv4-compatible (deprecated): ::a.b.c.d
        return ipaddress.IPv4Address(int(address))
    return None


@dataclass(frozen=True)
class Target:
    """A checked URL: where the request goes (`address`, pinned) and under what name."""

    url: str
    scheme: str
    host: str
    port: int
    address: str

    @property
    def pinned_url(self) -> str:
        """The URL with the pinned address in place of the host."""
        parts = urlsplit(self.url)
        host = f"[{self.address}]" if ":" in self.address else self.address
        return parts._replace(netloc=f"{host}:{self.port}").geturl()


@dataclass(frozen=True)
class Guard:
    allow_http: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    resolver: Resolver = system_resolver

    def check(self, url: str) -> Target:
        """The URL checked and its host resolved (once); RefusedUrl when it may not be called."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise RefusedUrl(url, "not a valid URL") from exc
        scheme = parts.scheme.lower()
        if scheme != "https" and not (scheme == "http" and self.allow_http):
            raise RefusedUrl(url, "only https URLs are called" + (" (or http)" if self.allow_http else ""))
        host = (parts.hostname or "").rstrip(".").lower()
        if not host:
            raise RefusedUrl(url, "the URL has no host")
        if parts.username is not None or parts.password is not None:
            raise RefusedUrl(url, "credentials in the URL are not accepted (use the action's auth)")
        port = port or (443 if scheme == "https" else 80)
        addresses = self._addresses(host, port)
        if host not in self.allowed_hosts:
            for address in addresses:
                why = refused_address(ipaddress.ip_address(address))
                if why:
                    raise RefusedUrl(url, f"the host resolves to {address}, {why}")
        return Target(url, scheme, host, port, addresses[0])

    def _addresses(self, host: str, port: int) -> list[str]:
        try:
            return [str(ipaddress.ip_address(host))]  # a literal address: nothing to resolve
        except ValueError:
            pass
        addresses = self.resolver(host, port)
        if not addresses:
            raise RefusedUrl(host, "the host does not resolve")
        return addresses


@dataclass
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes
    truncated: bool
    url: str  # the last hop's
    hops: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    client: httpx.Client,
    guard: Guard,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    max_response_bytes: int = MAX_RESPONSE_BYTES,
    follow_redirects: bool = True,
) -> Answer:
    """Make the request through the guard: every hop checked, pinned and bounded. `client` must not follow
    redirects itself (the guard does, hop by hop), and is one host's: httpx pools connections by address,
    so two names on one address would share a connection made under the first one's name."""
    hops: list[str] = []
    for _ in range(MAX_REDIRECTS + 1):
        target = guard.check(url)
        hops.append(url)
        sent_headers = {**(headers or {}), "Host": _host_header(target)}
        request = client.build_request(
            method, target.pinned_url, headers=sent_headers, content=content, extensions={"sni_hostname": target.host}
        )
        response = client.send(request, stream=True)
        try:
            body, truncated = _read_bounded(response.iter_bytes(), max_response_bytes)
        finally:
            response.close()
        location = response.headers.get("location")
        if follow_redirects and response.status_code in REDIRECTS and location:
            url = urljoin(url, location)
            if response.status_code == 303 or (response.status_code in (301, 302) and method.upper() == "POST"):
                method, content = "GET", None
            continue
        return Answer(response.status_code, response.headers, body, truncated, url, hops)
    raise RefusedUrl(url, f"more than {MAX_REDIRECTS} redirects")


def _host_header(target: Target) -> str:
    default = 443 if target.scheme == "https" else 80
    return target.host if target.port == default else f"{target.host}:{target.port}"


def _read_bounded(chunks: Iterable[bytes], limit: int) -> tuple[bytes, bool]:
    kept = bytearray()
    for chunk in chunks:
        kept += chunk
        if len(kept) > limit:
            return bytes(kept[:limit]), True
    return bytes(kept), False
