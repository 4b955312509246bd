"""X-Forwarded-* trust (pure): honoured only from configured proxies, read right to left."""

from __future__ import annotations

from router.proxy import TrustedProxies, client_view

HEADERS = [
    ("host", b"internal:8080"),
    ("x-forwarded-for", b"203.0.113.9, 198.51.100.7"),
    ("x-forwarded-proto", b"https"),
    ("x-forwarded-host", b"app.example.com"),
]


def test_untrusted_peer_is_ignored() -> None:
    view = client_view(("192.0.2.1", 5555), "http", HEADERS, TrustedProxies(["127.0.0.1"]))
    assert view.addr == ("192.0.2.1", 5555)
    assert view.scheme == "http"
    assert view.host == "internal:8080"


def test_no_proxies_configured() -> None:
    view = client_view(("127.0.0.1", 5555), "http", HEADERS, TrustedProxies([]))
    assert view.addr == ("127.0.0.1", 5555) and view.host == "internal:8080"


def test_trusted_peer_rightmost_untrusted_wins() -> None:
    view = client_view(("127.0.0.1", 5555), "http", HEADERS, TrustedProxies(["127.0.0.0/8"]))
    assert view.addr == ("198.51.100.7", 0)
    assert view.scheme == "https"
    assert view.host == "app.example.com"


def test_chain_of_trusted_proxies() -> None:
    headers = [("x-forwarded-for", b"203.0.113.9, 10.1.2.3"), ("x-forwarded-for", b"10.0.0.5")]
    view = client_view(("127.0.0.1", 1), "http", headers, TrustedProxies(["127.0.0.1", "10.0.0.0/8"]))
    assert view.addr == ("203.0.113.9", 0)


def test_spoofed_garbage_stops_chain() -> None:
    headers = [("x-forwarded-for", b"not-an-ip, [2001:db8::1]:443"), ("x-forwarded-proto", b"gopher")]
    view = client_view(("::1", 1), "http", headers, TrustedProxies(["::1"]))
    assert view.addr == ("2001:db8::1", 443)
    assert view.scheme == "http"


def test_ipv4_mapped_peer() -> None:
    view = client_view(("::ffff:127.0.0.1", 9), "http", HEADERS, TrustedProxies(["127.0.0.1"]))
    assert view.addr == ("198.51.100.7", 0)
