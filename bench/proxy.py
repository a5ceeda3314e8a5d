"""TCP forwarders on 127.0.0.1 for the benchmarks: one that counts the bytes in each direction
(what the service and a Triton server exchange: bench/run.py's ours-triton, bench/triton_hop.py),
and a stand-in for a ClusterIP Service that spreads connections over backends
(bench/triton_balance.py)."""

from __future__ import annotations

import asyncio
import random
import threading

from harness.localserver import free_port


class _Forwarder:
    """Forwards each connection to the port ``_target()`` picks, on an event loop of its own thread.
    ``_count(up, nbytes)`` sees every chunk (up: towards the target)."""

    def __init__(self) -> None:
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _target(self) -> int:
        raise NotImplementedError

    def _count(self, up: bool, nbytes: int) -> None:
        pass

    def __enter__(self):
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

    async def _pipe(self, reader, writer, up: bool) -> None:
        try:
            while data := await reader.read(65536):
                self._count(up, len(data))
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_reader, client_writer) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self._target())
        except OSError:
            client_writer.close()
            return
        try:
            await asyncio.gather(self._pipe(client_reader, server_writer, True),
                                 self._pipe(server_reader, client_writer, False))
        except asyncio.CancelledError:  # the forwarder is closing
            pass

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start():
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()


class CountingProxy(_Forwarder):
    """A TCP forwarder on 127.0.0.1 that counts the bytes in each direction."""

    def __init__(self, target_port: int):
        super().__init__()
        self.target_port = target_port
        self.up = 0  # service -> Triton
        self.down = 0  # Triton -> service

    def __enter__(self) -> CountingProxy:
        return super().__enter__()

    def reset(self) -> None:
        self.up = self.down = 0

    def _target(self) -> int:
        return self.target_port

    def _count(self, up: bool, nbytes: int) -> None:
        if up:
            self.up += nbytes
        else:
            self.down += nbytes


class ServiceProxy(_Forwarder):
    """A stand-in for a ClusterIP Service on 127.0.0.1 (kube-proxy's iptables mode): each new TCP
    connection goes to one backend port picked at random from the current set, and stays there.
    ``backends`` may change while it runs (pods added or taken out of the Service); connections
    already open are left alone, as conntrack leaves them."""

    def __init__(self, backends: list[int], seed: int = 0):
        super().__init__()
        self.backends = list(backends)
        self.connections: dict[int, int] = {}  # backend port -> connections opened to it
        self._random = random.Random(seed)

    def __enter__(self) -> ServiceProxy:
        return super().__enter__()

    def _target(self) -> int:
        port = self._random.choice(self.backends)
        self.connections[port] = self.connections.get(port, 0) + 1
        return port
