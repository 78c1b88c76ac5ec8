"""Identity's keys as a service sees them: a bad token is a 401, identity being
unreachable is a 503 (an outage of a dependency, not the caller's fault)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from lkern.platform.auth import JwksKeys
from lkern.platform.errors import ServiceUnavailable


@asynccontextmanager
async def jwks_server(keys: list[dict[str, str]]) -> AsyncIterator[str]:
    """A JWKS route answering ``keys`` to every request, on a port of its own."""
    body = json.dumps({"keys": keys}).encode()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/.well-known/jwks.json"


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unknown_key_from_a_reachable_identity_is_no_key():
    async with jwks_server([]) as url:
        assert await JwksKeys(url).key("not-a-kid") is None


async def test_an_unreachable_identity_is_a_503_not_a_bad_token():
    keys = JwksKeys(f"http://127.0.0.1:{unused_port()}/.well-known/jwks.json", timeout=0.5)
    with pytest.raises(ServiceUnavailable) as refused:
        await keys.key("some-kid")
    assert refused.value.status == 503
    assert refused.value.code == "IDENTITY_UNAVAILABLE"


async def test_identity_answering_again_clears_the_outage():
    keys = JwksKeys(f"http://127.0.0.1:{unused_port()}/.well-known/jwks.json", timeout=0.5)
    with pytest.raises(ServiceUnavailable):
        await keys.key("some-kid")
    async with jwks_server([]) as url:
        keys.url = url
        keys._fetched_at = float("-inf")  # past the pause between fetches
        assert await keys.key("some-kid") is None
