"""Broker faults for the tests: a TCP proxy that can be cut, a freezable broker.

Tansu keeps its data in memory only, so a restarted Tansu has lost every
topic. An outage that keeps the data is modelled two ways instead:

- ``FaultyBroker.freeze()``: SIGSTOP the broker process (connections stay
  open, requests hang until they time out), ``thaw()`` sends SIGCONT;
- ``TcpProxy.cut()``: the only route to the broker goes through this proxy;
  cutting it closes the listening socket (new connections are refused) and
  resets every open connection; ``restore()`` listens again on the same port.
  The broker advertises the proxy's address in its metadata, so clients never
  learn a way around it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading

from anomalyd.broker.embedded import EmbeddedBroker
from tests.io.service import free_port


class TcpProxy:
    """A byte-for-byte TCP forwarder on 127.0.0.1, run by its own event loop thread."""

    def __init__(self, target_port: int, port: int | None = None):
        self.target_port = target_port
        self.port = port or free_port()
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.base_events.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.connections = 0  # accepted since the start: how often clients (re)connected
        self.thread = threading.Thread(target=self.loop.run_forever, name="tcp-proxy", daemon=True)
        self.thread.start()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _call(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._reset(writer)

    def _reset(self, writer: asyncio.StreamWriter) -> None:
        self.writers.discard(writer)
        writer.transport.abort()  # RST, as a dead host or a dropped route would look

    async def _handle(self, c_reader, c_writer) -> None:
        self.connections += 1
        try:
            b_reader, b_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            c_writer.transport.abort()
            return
        self.writers |= {c_writer, b_writer}
        await asyncio.gather(self._pipe(c_reader, b_writer), self._pipe(b_reader, c_writer))

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _cut(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for w in list(self.writers):
            self._reset(w)

    def start(self) -> "TcpProxy":
        self._call(self._start())
        return self

    restore = start

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        self._call(self._cut())

    def close(self) -> None:
        try:
            self._call(self._cut())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


class FaultyBroker(EmbeddedBroker):
    """A Tansu broker that can be frozen (pass ``advertised=`` a proxy's address
    to put a TcpProxy in front of it)."""

    def freeze(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
