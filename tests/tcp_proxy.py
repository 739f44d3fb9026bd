"""A small asyncio TCP proxy that tests put in front of a server and then break.

``await TcpProxy.start(upstream)`` listens on 127.0.0.1 (a free port) and relays
every connection to ``upstream``: ``("tcp", host, port)`` or ``("unix", path)``.
:meth:`TcpProxy.break_` makes the server look broken in one of three ways, and
:meth:`TcpProxy.heal` makes it work again:

- ``"refuse"``: open connections are reset and new ones are closed at once, as
  when the server is down;
- ``"stall"``: connections stay open but no byte goes through in either
  direction, as with a partitioned network (clients see only timeouts);
- ``"drop"``: open connections are reset once; new ones work.

``for_postgres(dsn)`` proxies a PostgreSQL DSN (TCP or Unix socket) and gives
the DSN that goes through the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["BreakMode", "TcpProxy", "Upstream"]

BreakMode = Literal["refuse", "stall", "drop"]
Upstream = tuple[str, str, int] | tuple[str, str]


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST, not FIN, so the peer sees a connection reset."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class TcpProxy:
    """See the module docstring."""

    def __init__(self, upstream: Upstream) -> None:
        """Relay to ``upstream``; call :meth:`listen` (or use :meth:`start`)."""
        self.upstream = upstream
        self.mode: BreakMode | None = None
        self.accepted = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @classmethod
    async def start(cls, upstream: Upstream) -> TcpProxy:
        """A listening proxy to ``upstream``."""
        proxy = cls(upstream)
        await proxy.listen()
        return proxy

    @classmethod
    async def for_postgres(cls, dsn: str) -> tuple[TcpProxy, str]:
        """A proxy in front of the server of ``dsn``, and the DSN that goes through it."""
        parts = urlsplit(dsn)
        query = dict(parse_qsl(parts.query))
        port = parts.port or int(query.pop("port", "5432"))
        socket_dir = query.pop("host", None)
        upstream: Upstream
        if socket_dir is not None and socket_dir.startswith("/"):
            upstream = ("unix", f"{socket_dir}/.s.PGSQL.{port}")
        else:
            upstream = ("tcp", parts.hostname or "127.0.0.1", port)
        proxy = await cls.start(upstream)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}"
        return proxy, urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))

    async def listen(self) -> None:
        """Start accepting on 127.0.0.1 (``self.port``)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def connections(self) -> int:
        """Client connections currently open."""
        return len(self._pairs)

    def break_(self, mode: BreakMode) -> None:
        """Break the link (see the module docstring)."""
        if mode == "stall":
            self._flowing.clear()
            self.mode = "stall"
            return
        self._flowing.set()
        self.mode = "refuse" if mode == "refuse" else None
        for client, server in list(self._pairs):
            _reset(client)
            if server is not None:
                server.transport.abort()
        self._pairs.clear()

    def heal(self) -> None:
        """Let everything through again."""
        self.mode = None
        self._flowing.set()

    async def close(self) -> None:
        """Stop listening and close every connection."""
        self.heal()
        self.break_("drop")
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.upstream[0] == "unix":
            return await asyncio.open_unix_connection(self.upstream[1])
        _, host, port = self.upstream  # type: ignore[misc]
        return await asyncio.open_connection(host, port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode == "refuse":
            _reset(writer)
            return
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter | None] = (writer, None)
        self._pairs.add(pair)
        try:
            await self._flowing.wait()
            if pair not in self._pairs:
                return
            up_reader, up_writer = await self._open_upstream()
        except OSError:
            self._pairs.discard(pair)
            _reset(writer)
            return
        self._pairs.discard(pair)
        pair = (writer, up_writer)
        self._pairs.add(pair)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            self._pairs.discard(pair)
            writer.transport.abort()
            up_writer.transport.abort()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while True:
            data = await source.read(65536)
            if not data:
                sink.transport.abort()
                return
            await self._flowing.wait()
            if sink.transport.is_closing():
                return
            sink.write(data)
            await sink.drain()
