"""allowed_outbound_hosts parsing and matching, table-tested against Spin v3's own cases."""

from __future__ import annotations

import pytest

from runtime.capabilities.support.allowed_hosts import (
    AllowedHost,
    AllowedHostError,
    AllowedHosts,
    OutboundUrl,
    component_allowed_hosts,
    convert_legacy_http_hosts,
)


@pytest.mark.parametrize(
    "entry",
    [
        "spin.fermyon.dev", "spin.fermyon.dev:80", "localhost", "localhost:3001", "example.com",
        "http://[::1]", "*://127.0.0.0/24", "http://spin.fermyon.dev/a", "http://spin.fermyon.dev:6666/a/b",
        "http://*.fermyon.dev/a", "http://a.*.com", "http://foo*", "1http://x", "tcp://host",
        "http://x:abc", "http://x:70000", "{http,https}://x", "*", "",
    ],
)
def test_rejected_entries(entry: str) -> None:
    with pytest.raises(AllowedHostError):
        AllowedHost.parse(entry)


def test_insecure_allow_all_is_refused() -> None:
    with pytest.raises(AllowedHostError, match=r"\*://\*:\*"):
        AllowedHosts.parse(["insecure:allow-all"])
    with pytest.raises(AllowedHostError):
        AllowedHosts.parse(["spin.fermyon.dev", "insecure:allow-all"])


def allowed(entries: list[str], url: str, scheme: str = "https") -> bool:
    return AllowedHosts.parse(entries).allows_url(url, scheme)


@pytest.mark.parametrize(
    ("entries", "url", "scheme", "ok"),
    [
        # Spin's test_allowed_hosts_can_be_specific
        (["*://spin.fermyon.dev:443", "http://example.com:8383"], "http://example.com:8383/foo/bar", "http", True),
        (["*://spin.fermyon.dev:443", "http://example.com:8383"], "https://spin.fermyon.dev", "https", True),
        (["*://spin.fermyon.dev:443", "http://example.com:8383"], "https://spin.fermyon.dev/", "https", True),
        (["*://spin.fermyon.dev:443", "http://example.com:8383"], "http://example.com/", "http", False),
        (["*://spin.fermyon.dev:443", "http://example.com:8383"], "http://google.com/", "http", False),
        (["*://spin.fermyon.dev:443", "http://example.com:8383"], "spin.fermyon.dev:443", "https", True),
        (["*://spin.fermyon.dev:443", "http://example.com:8383"], "example.com:8383", "http", True),
        # trailing slash in the entry
        (["https://my.api.com/"], "https://my.api.com", "https", True),
        # subdomain wildcards
        (["http://*.example.com", "http://*.example2.com:8383"], "http://a.example.com/foo", "http", True),
        (["http://*.example.com", "http://*.example2.com:8383"], "http://a.b.example.com/foo", "http", True),
        (["http://*.example.com", "http://*.example2.com:8383"], "http://a.b.example2.com:8383/x", "http", True),
        (["http://*.example.com", "http://*.example2.com:8383"], "http://a.b.example2.com/x", "http", False),
        (["http://*.example.com", "http://*.example2.com:8383"], "http://example.com/foo", "http", False),
        (["http://*.example.com", "http://*.example2.com:8383"], "http://myexample.com/foo", "http", False),
        # default ports: an explicit default port equals no port
        (["https://example.com"], "https://example.com:443/", "https", True),
        (["https://example.com"], "https://example.com:8443/", "https", False),
        (["http://example.com"], "https://example.com/", "https", False),
        # port ranges are end-exclusive
        (["http://127.0.0.1:4000..4002"], "http://127.0.0.1:4001/", "http", True),
        (["http://127.0.0.1:4000..4002"], "http://127.0.0.1:4002/", "http", False),
        # CIDR
        (["*://127.0.0.1/24:63551"], "tcp://127.0.0.1:63551", "tcp", True),
        (["*://127.0.0.0/24:*"], "http://127.0.0.9:1234/", "http", True),
        (["*://127.0.0.0/24:*"], "http://127.0.1.9:1234/", "http", False),
        (["*://127.0.0.0/24:*"], "http://localhost:1234/", "http", False),
        # IPv6 literal
        (["http://[::1]:8001"], "http://[::1]:8001/x", "http", True),
        # all
        (["*://*:*"], "https://anything.example:1/", "https", True),
        # self only allows relative URLs
        (["http://self"], "http://self/", "http", False),
        # case: URL hosts are lower-cased before matching
        (["https://example.com"], "https://EXAMPLE.com/", "https", True),
        # empty list denies
        ([], "https://example.com/", "https", False),
        # garbage is denied, never raised
        (["*://*:*"], "http://[oops/", "http", False),
    ],
)
def test_matching(entries: list[str], url: str, scheme: str, ok: bool) -> None:
    assert allowed(entries, url, scheme) is ok


def test_relative_urls_need_self_or_any_host() -> None:
    assert AllowedHosts.parse(["http://self"]).allows_relative(["http", "https"])
    assert AllowedHosts.parse(["*://*:*"]).allows_relative(["http"])
    assert not AllowedHosts.parse(["https://self"]).allows_relative(["http"])
    assert not AllowedHosts.parse(["http://example.com"]).allows_relative(["http"])


def test_templates_are_rendered_first() -> None:
    hosts = AllowedHosts.parse(["https://{{ api_host }}:{{ port }}"], {"https://{{ api_host }}:{{ port }}":
                               "https://api.example.com:8443"}.__getitem__)
    assert hosts.allows_url("https://api.example.com:8443/v1", "https")
    assert not hosts.allows_url("https://api.example.com/v1", "https")
    with pytest.raises(AllowedHostError):
        AllowedHosts.parse(["https://{{ api_host }}"])


def test_outbound_url_parts() -> None:
    assert OutboundUrl.parse("https://user:pass@example.com/file@0.1.0.json", "https") == OutboundUrl(
        "https", "example.com", None
    )
    assert OutboundUrl.parse("http://example.com:80/", "http").port is None
    assert OutboundUrl.parse("http://example.com:8080", "http").port == 8080
    assert OutboundUrl.parse("example.com:8080", "https") == OutboundUrl("https", "example.com", 8080)


@pytest.mark.parametrize(
    ("legacy", "converted"),
    [
        ([], []),
        (["example.com"], ["http://example.com", "https://example.com"]),
        (["example.com:8080"], ["http://example.com:8080", "https://example.com:8080"]),
        (["https://hooks.slack.com"], ["http://hooks.slack.com", "https://hooks.slack.com"]),
        (["https://x.com:443"], ["http://x.com", "https://x.com"]),
        (["http://x.com:443"], ["http://x.com:443", "https://x.com:443"]),
        (["self"], ["http://self"]),
        (["insecure:allow-all"], ["http://*:*", "https://*:*", "http://self"]),
        (["example.com", "insecure:allow-all"], ["http://*:*", "https://*:*", "http://self"]),
        # one invalid entry drops the whole list, as Spin 3's unwrap_or_default
        (["example.com", "ftp://x.com"], []),
        (["example.com/path"], []),
    ],
)
def test_legacy_allowed_http_hosts_conversion(legacy: list[str], converted: list[str]) -> None:
    assert convert_legacy_http_hosts(legacy) == converted


def test_component_hosts_combine_both_keys() -> None:
    entries = component_allowed_hosts(["https://a.example"], ["b.example"])
    hosts = AllowedHosts.parse(entries)
    assert hosts.allows_url("https://a.example/", "https")
    assert hosts.allows_url("http://b.example/", "http")
    assert not hosts.allows_url("http://a.example/", "http")
