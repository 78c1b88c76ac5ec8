"""Who the client is: the socket peer, or what trusted proxies say it was (§9).

``X-Forwarded-For`` is only believed when the socket peer is one of the
configured trusted proxies; then the list is read from the right, each
trusted hop skipped, and the first address no proxy of ours vouches for is
the client. Anything to its left was written by the client itself and could
say anything. With no proxies configured (the default) the header is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

UNKNOWN = "unknown"


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses and CIDR networks; a bare address is a network of one."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is neither an IP address nor a network") from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as proxies write it: bare, ``[v6]:port`` or ``v4:port``."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class TrustedProxies:
    def __init__(self, entries: Sequence[str]) -> None:
        self.networks = parse_networks(entries)
        # Peers are few (the proxies themselves), so each is judged once.
        self.trusts = lru_cache(maxsize=4096)(self._trusts)

    def _trusts(self, text: str) -> bool:
        address = _address(text)
        return address is not None and any(address in network for network in self.networks)

    def client(self, peer: str, forwarded_for: Sequence[str]) -> str:
        """The client of a request from ``peer`` carrying these X-Forwarded-For values."""
        if not self.networks or not self.trusts(peer):
            return peer
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        hops = [hop for hop in hops if hop]
        nearest = peer
        for hop in reversed(hops):
            if not self.trusts(hop):
                address = _address(hop)
                # A hop that is no address at all is not believed either: the
                # client is then the nearest proxy that wrote it.
                return str(address) if address is not None else nearest
            nearest = hop
        return nearest


def resolve_client(scope: Scope, proxies: TrustedProxies) -> None:
    """Put the resolved client into ``scope["client"]``, where every layer looks."""
    if not proxies.networks:
        return
    peer = scope.get("client")
    if not peer:
        return
    forwarded = [
        value.decode("latin-1")
        for name, value in scope.get("headers") or ()
        if name == b"x-forwarded-for"
    ]
    if not forwarded:
        return
    client = proxies.client(peer[0], forwarded)
    if client != peer[0]:
        scope["client"] = (client, 0)


def client_address(connection: Mapping[str, Any]) -> str:
    """The one answer to "who is calling", for rate limits, logs and login throttling:
    of a request (a Starlette ``Request`` is a mapping of its scope) or of its scope."""
    client = connection.get("client")
    if not client:
        return UNKNOWN
    return str(client[0])
