"""A TCP forwarder on 127.0.0.1 that counts the bytes in each direction: what the service and a
Triton server exchange (bench/run.py's ours-triton, bench/triton_hop.py)."""

from __future__ import annotations

import asyncio
import threading

from harness.localserver import free_port


class CountingProxy:
    """A TCP forwarder on 127.0.0.1 that counts the bytes in each direction."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self.up = 0  # service -> Triton
        self.down = 0  # Triton -> service
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def reset(self) -> None:
        self.up = self.down = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def pipe(reader, writer, up: bool):
            try:
                while data := await reader.read(65536):
                    if up:
                        self.up += len(data)
                    else:
                        self.down += len(data)
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        async def handle(client_reader, client_writer):
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            await asyncio.gather(pipe(client_reader, server_writer, True), pipe(server_reader, client_writer, False))

        async def start():
            await asyncio.start_server(handle, "127.0.0.1", self.port)
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()


class ServiceProxy:
    """A stand-in for a ClusterIP Service on 127.0.0.1 (kube-proxy's iptables mode): each new TCP
    connection goes to one backend port picked at random from the current set, and stays there.
    ``backends`` may change while it runs (pods added or taken out of the Service); connections
    already open are left alone, as conntrack leaves them."""

    def __init__(self, backends: list[int], seed: int = 0):
        import random

        self.backends = list(backends)
        self.port = free_port()
        self.connections: dict[int, int] = {}  # backend port -> connections opened to it
        self._random = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ServiceProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        async def shutdown():
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def pipe(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        async def handle(client_reader, client_writer):
            port = self._random.choice(self.backends)
            self.connections[port] = self.connections.get(port, 0) + 1
            try:
                server_reader, server_writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                client_writer.close()
                return
            try:
                await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))
            except asyncio.CancelledError:  # the proxy is closing
                pass

        async def start():
            self._server = await asyncio.start_server(handle, "127.0.0.1", self.port)
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()
