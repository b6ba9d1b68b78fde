"""The HTTP side of the abuse controls (see sandbox/abuse.py): the per-developer rate limit as a
typed dependency, and a cap on the request body before anything reads it."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from sandbox.abuse import RateLimiter
from sandbox.accounts import User
from sandbox.api.deps import Developer
from sandbox.errors import PayloadTooLarge
from sandbox.settings import Settings

__all__ = ["BodySizeLimit", "Submitter", "install"]


def install(app: FastAPI, settings: Settings) -> None:
    """One rate limiter per app (so per server process) and the body-size cap."""
    app.state.rate_limiter = RateLimiter(settings.jobs_per_minute, settings.jobs_burst)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)


def rate_limited(request: Request, developer: Developer) -> User:
    request.app.state.rate_limiter.take(developer.id)
    return developer


# A developer who may submit now: POST /jobs and POST /explain (both compile and are logged).
Submitter = Annotated[User, Depends(rate_limited)]


class BodySizeLimit:
    """Refuse request bodies over `max_bytes` with 413, by their Content-Length before reading,
    or, for a chunked body without one, as soon as the bytes read pass the limit (the route's
    own response is then replaced, since FastAPI turns a failed body read into a 400)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, f"{int(declared):,} bytes")
            return
        seen, over, started = 0, False, False

        async def counted_receive() -> dict:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True
                    return {"type": "http.disconnect"}  # stop the route reading any further
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal started
            if over:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._refuse(send, f"more than {self.max_bytes:,} bytes")
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted_receive, guarded_send)

    async def _refuse(self, send: Any, size: str) -> None:
        error = PayloadTooLarge(
            f"The request body has {size}; the limit is {self.max_bytes:,} bytes. Send a smaller request: "
            "SQL may be up to 20,000 characters.",
            limit_bytes=self.max_bytes,
        )
        body = json.dumps({"error": error.to_dict()}).encode()
        await send({"type": "http.response.start", "status": error.status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
