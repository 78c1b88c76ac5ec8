"""Body limits (§2): per route, a client that disconnects, and the body passed on unjoined."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lkern.platform.bodies import BodyLimitMiddleware, max_body_bytes, route_limits
from lkern.platform.errors import DomainError
from lkern.platform.settings import Settings


async def size(request: Request) -> JSONResponse:
    return JSONResponse({"size": len(await request.body())})


@max_body_bytes(lambda settings: settings.max_body_bytes * 4)
async def upload(request: Request) -> JSONResponse:
    return await size(request)


def app_with_limits() -> Starlette:
    app = Starlette(
        routes=[
            Route("/json", size, methods=["POST"]),
            Route("/things/{thing}/attachments", upload, methods=["POST"]),
        ]
    )
    settings = Settings(max_body_bytes=100)
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_body_bytes,
        timeout_seconds=5,
        min_rate=1000,
        routes=route_limits(app.routes, settings),
    )
    return app


async def test_a_route_may_declare_its_own_limit():
    transport = httpx.ASGITransport(app=app_with_limits())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.post("/json", content=b"x" * 100)).json() == {"size": 100}
        assert (await client.post("/json", content=b"x" * 101)).status_code == 413
        upload = "/things/7/attachments"
        assert (await client.post(upload, content=b"x" * 400)).json() == {"size": 400}
        assert (await client.post(upload, content=b"x" * 401)).status_code == 413
        # Another method on the same path keeps the default.
        assert (await client.put(upload, content=b"x" * 101)).status_code == 413


async def test_a_client_that_leaves_mid_body_reaches_no_route():
    reached = []

    async def app(scope, receive, send) -> None:
        reached.append(scope["path"])

    messages = [
        {"type": "http.request", "body": b"x" * 10, "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message) -> None:
        sent.append(message)

    middleware = BodyLimitMiddleware(app, limit=100, timeout_seconds=1, min_rate=10)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/x",
        "headers": [(b"content-length", b"50")],
    }
    await middleware(scope, receive, send)
    assert reached == []
    assert sent[0]["status"] == 400


async def test_the_body_reaches_the_route_as_the_chunks_that_came():
    seen = []

    async def app(scope, receive, send) -> None:
        while True:
            message = await receive()
            seen.append(message["body"])
            if not message["more_body"]:
                break

    chunks = [b"a" * 10, b"b" * 10, b""]
    incoming = [
        {"type": "http.request", "body": chunk, "more_body": n < 2}
        for n, chunk in enumerate(chunks)
    ]

    async def receive():
        return incoming.pop(0)

    middleware = BodyLimitMiddleware(app, limit=100, timeout_seconds=1, min_rate=10)
    headers = [(b"transfer-encoding", b"chunked")]

    async def send(message) -> None:
        raise AssertionError(f"nothing is answered here: {message}")

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    await middleware(scope, receive, send)
    assert seen == chunks


async def test_a_streamed_route_reads_as_it_comes_within_the_same_limits():
    seen: list[int] = []

    @max_body_bytes(300, streamed=True)
    async def streamed(request: Request) -> JSONResponse:
        total = 0
        try:
            async for chunk in request.stream():
                total += len(chunk)
                seen.append(total)
        except DomainError as problem:
            return JSONResponse({"code": problem.code}, status_code=problem.status)
        return JSONResponse({"size": total})

    app = Starlette(routes=[Route("/stream", streamed, methods=["POST"])])
    middleware = BodyLimitMiddleware(
        app,
        limit=100,
        timeout_seconds=0.3,
        min_rate=1000,
        routes=route_limits(app.routes, Settings()),
    )

    async def chunks(count: int, pause: float = 0.0):
        for _ in range(count):
            await asyncio.sleep(pause)
            yield b"x" * 50

    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post("/stream", content=chunks(6))
        assert answer.json() == {"size": 300}
        # The route saw the body arrive in pieces, not held back and replayed.
        assert seen[:2] == [50, 100]
        answer = await client.post("/stream", content=chunks(7))
        assert answer.status_code == 413 and answer.json()["code"] == "BODY_TOO_LARGE"
        answer = await client.post("/stream", content=chunks(3, pause=0.4))
        assert answer.status_code == 408 and answer.json()["code"] == "BODY_TIMEOUT"
        assert (await client.post("/stream", content=b"x" * 301)).status_code == 413
