"""Two HTTP/1.1 keep-alive clients with one interface: httpx, and a minimal raw asyncio one.

httpx costs a few hundred microseconds of CPU per request; on a 2-core machine where the load
generator shares the cores with the mesh that is CPU taken from the system under test. The raw
client (one connection per caller, `Content-Length` bodies only, which is what the gateway sends)
costs a fraction of that, so it is the default load generator; `--client httpx` compares.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Protocol, cast

import httpx


class HttpError(Exception):
    """The connection failed or the response could not be read."""


class Poster(Protocol):
    async def post(self, path: str, body: bytes) -> tuple[int, bytes]: ...

    async def get(self, path: str) -> tuple[int, bytes]: ...

    async def close(self) -> None: ...


class HttpxPoster:
    """Wraps one shared httpx.AsyncClient (its pool keeps `connections` sockets alive)."""

    def __init__(self, base_url: str, connections: int, timeout: float = 30.0) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            r = await self._client.post(path, content=body, headers={"content-type": "application/json"})
        except httpx.HTTPError as exc:
            raise HttpError(f"{type(exc).__name__}: {exc}") from exc
        return r.status_code, r.content

    async def get(self, path: str) -> tuple[int, bytes]:
        try:
            r = await self._client.get(path)
        except httpx.HTTPError as exc:
            raise HttpError(f"{type(exc).__name__}: {exc}") from exc
        return r.status_code, r.content

    async def close(self) -> None:
        await self._client.aclose()


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP connection's transport; uvloop's does not subclass asyncio.Transport, so no isinstance.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(HttpError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self._parse()

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes, bool]]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._waiter

    def _parse(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(self._buf[:end]).split(b"\r\n")
        try:
            status = int(lines[0].split(b" ", 2)[1])
        except (IndexError, ValueError):
            waiter.set_exception(HttpError(f"bad status line {lines[0]!r}"))
            return
        length: int | None = None
        close = False
        for line in lines[1:]:
            key, _, value = line.partition(b":")
            key = key.strip().lower()
            if key == b"content-length":
                length = int(value.strip())
            elif key == b"connection" and value.strip().lower() == b"close":
                close = True
            elif key == b"transfer-encoding":
                waiter.set_exception(HttpError("chunked responses are not supported by the raw client"))
                return
        if length is None:
            length = 0
        if len(self._buf) < end + 4 + length:
            return
        body = bytes(self._buf[end + 4 : end + 4 + length])
        del self._buf[: end + 4 + length]
        waiter.set_result((status, body, close))


class RawPoster:
    """One keep-alive connection, one request at a time (give each concurrent caller its own)."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the raw client speaks plain http only: {base_url}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._prefix = f"Host: {self._host}:{self._port}\r\n".encode()
        self._timeout = timeout
        self._conn: _Conn | None = None

    async def _connection(self) -> _Conn:
        if self._conn is None or self._conn.closed:
            loop = asyncio.get_running_loop()
            try:
                transport, conn = await loop.create_connection(_Conn, self._host, self._port)
            except OSError as exc:
                raise HttpError(f"connect: {exc}") from exc
            # uvloop calls connection_made soon after, not before, create_connection returns.
            conn.transport = transport
            self._conn = conn
        return self._conn

    async def _request(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        conn = await self._connection()
        try:
            status, payload, close = await asyncio.wait_for(conn.send(head + body), self._timeout)
        except TimeoutError as exc:
            self._drop()
            raise HttpError("timeout") from exc
        except HttpError:
            self._drop()
            raise
        if close:
            self._drop()
        return status, payload

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\n".encode()
            + self._prefix
            + b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
        )
        return await self._request(head, body)

    async def get(self, path: str) -> tuple[int, bytes]:
        return await self._request(f"GET {path} HTTP/1.1\r\n".encode() + self._prefix + b"\r\n", b"")

    def _drop(self) -> None:
        if self._conn is not None and self._conn.transport is not None:
            self._conn.transport.close()
        self._conn = None

    async def close(self) -> None:
        self._drop()
