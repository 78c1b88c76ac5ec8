"""Client addresses (§9): the socket peer, unless a trusted proxy forwarded the request."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lkern.platform.addresses import TrustedProxies, client_address, resolve_client
from lkern.platform.settings import Settings


def test_no_trusted_proxies_means_the_peer_whatever_the_header_says():
    assert TrustedProxies(()).client("127.0.0.1", ["203.0.113.9"]) == "127.0.0.1"


def test_an_untrusted_peer_s_header_is_ignored():
    proxies = TrustedProxies(["10.0.0.0/8"])
    assert proxies.client("192.0.2.1", ["203.0.113.9"]) == "192.0.2.1"


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        (["203.0.113.9"], "203.0.113.9"),
        # Read from the right: the left part is whatever the client sent.
        (["1.2.3.4, 203.0.113.9"], "203.0.113.9"),
        # Trusted hops are skipped, across several headers too.
        (["1.2.3.4, 203.0.113.9", "10.0.0.7"], "203.0.113.9"),
        (["1.2.3.4, 203.0.113.9, 10.9.9.9, 10.0.0.7"], "203.0.113.9"),
        (["203.0.113.9:4711"], "203.0.113.9"),
        (["[2001:db8::5]:443"], "2001:db8::5"),
        (["2001:db8::5"], "2001:db8::5"),
        # Only proxies all the way: the farthest one is the client.
        (["10.0.0.8, 10.0.0.7"], "10.0.0.8"),
        ([], "10.0.0.1"),
        # Not an address: the nearest proxy, never the text itself.
        (["203.0.113.9, evil"], "10.0.0.1"),
        (["evil, 10.0.0.7"], "10.0.0.7"),
    ],
)
def test_a_trusted_peer_s_header_is_read_from_the_right(forwarded, client):
    assert TrustedProxies(["10.0.0.0/8"]).client("10.0.0.1", forwarded) == client


def test_the_resolved_client_replaces_the_scope_s_peer():
    scope = {"client": ("127.0.0.1", 5000), "headers": [(b"x-forwarded-for", b"203.0.113.9")]}
    resolve_client(scope, TrustedProxies(["127.0.0.1", "::1"]))
    assert client_address(scope) == "203.0.113.9"
    untouched = {"client": ("127.0.0.1", 5000), "headers": [(b"x-forwarded-for", b"1.1.1.1")]}
    resolve_client(untouched, TrustedProxies([]))
    assert client_address(untouched) == "127.0.0.1"
    assert client_address({"client": None}) == "unknown"


def test_trusted_proxies_are_read_from_a_list_or_comma_separated():
    assert Settings(trusted_proxies="10.0.0.0/8, 127.0.0.1").trusted_proxies == [
        "10.0.0.0/8",
        "127.0.0.1",
    ]
    assert Settings(trusted_proxies='["::1"]').trusted_proxies == ["::1"]
    assert Settings().trusted_proxies == []
    with pytest.raises(ValidationError, match="neither an IP address nor a network"):
        Settings(trusted_proxies="10.0.0.0/8,proxy.example.com")


def test_trusted_proxies_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("LKERN_TRUSTED_PROXIES", "192.0.2.0/24,2001:db8::/32")
    assert Settings().trusted_proxies == ["192.0.2.0/24", "2001:db8::/32"]
