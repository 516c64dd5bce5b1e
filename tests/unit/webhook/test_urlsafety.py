from __future__ import annotations

import ipaddress

import pytest

from webhook import urlsafety
from webhook.urlsafety import UnsafeURL, check_syntax, check_url, pinned_request


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("https://10.1.2.3/hook", "private"),
        ("https://172.16.0.5/hook", "private"),
        ("https://192.168.1.10/hook", "private"),
        ("https://[fd12:3456::1]/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://169.254.10.10/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://100.64.0.1/hook", "carrier-grade NAT"),
        ("http://100.127.255.254/hook", "carrier-grade NAT"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://localhost:9000/hook", "not allowed"),
    ],
)
async def test_private_destinations_are_refused(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURL, match=reason):
        await check_url(url, allow_private=False)


@pytest.mark.parametrize(
    "url", ["https://93.184.215.14/hook", "http://8.8.8.8:8080/x", "https://[2606:4700::1111]/"]
)
async def test_public_addresses_are_allowed(url: str) -> None:
    await check_url(url, allow_private=False)


async def test_private_allowed_when_configured() -> None:
    await check_url("http://127.0.0.1:8080/hook", allow_private=True)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("example.com/hook", "scheme"),
        ("https:///nohost", "no host"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://example.com:99999/", "invalid"),
    ],
)
async def test_bad_syntax_is_refused_even_when_private_allowed(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURL, match=reason):
        await check_url(url, allow_private=True)


def test_default_ports() -> None:
    assert check_syntax("https://example.com/x") == ("example.com", 443)
    assert check_syntax("http://example.com/x") == ("example.com", 80)


async def test_https_required_when_asked() -> None:
    with pytest.raises(UnsafeURL, match="https"):
        await check_url("http://8.8.8.8/h", allow_private=False, require_https=True)
    assert await check_url("https://8.8.8.8/h", allow_private=False, require_https=True) == (
        ipaddress.ip_address("8.8.8.8")
    )


async def test_a_name_is_pinned_to_the_checked_address(monkeypatch: pytest.MonkeyPatch) -> None:
    async def public(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return [ipaddress.ip_address("93.184.215.14")]

    monkeypatch.setattr(urlsafety, "resolve", public)
    address = await check_url("https://hooks.example.com:8443/in?x=1", allow_private=False)
    pinned = pinned_request("https://hooks.example.com:8443/in?x=1", address)
    assert pinned.url == "https://93.184.215.14:8443/in?x=1"
    assert pinned.headers == {"host": "hooks.example.com:8443"}
    assert pinned.extensions == {"sni_hostname": "hooks.example.com"}
    v6 = pinned_request("http://h.example/x", ipaddress.ip_address("2606:4700::1111"))
    assert (v6.url, v6.extensions) == ("http://[2606:4700::1111]/x", {})


async def test_a_name_with_any_private_answer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async def mixed(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return [ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("10.0.0.5")]

    monkeypatch.setattr(urlsafety, "resolve", mixed)
    with pytest.raises(UnsafeURL, match="10.0.0.5, a private address"):
        await check_url("https://rebind.example.com/h", allow_private=False)
