"""Which Triton a call goes to: one address, or every pod behind a headless Service.

Behind a ClusterIP Service, kube-proxy picks a Triton pod once per TCP connection, and a
kept-alive connection stays on that pod: the API pod's pooled connections stay on the Triton pods
that existed when they were opened, and a Triton pod added by the autoscaler gets almost nothing.

With ``OCR_TRITON_BALANCE=dns`` the service resolves the Triton host itself (for a headless
Service: one address per ready Triton pod) every ``OCR_TRITON_RESOLVE_S`` seconds, keeps a
connection pool per address, and sends each call to the address with the fewest calls in flight
(ties taken in turn). An address that leaves the answer (its pod is terminating, or no longer
ready) gets no new call and is closed once its calls in flight have ended; an address that refused
a connection is skipped for a few seconds. With ``off`` the address is used as given, one pool.
Either way ``OCR_TRITON_URL`` may list several ``host:port`` separated by commas.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tritonclient.http.aio as aioclient

log = logging.getLogger(__name__)

Resolver = Callable[[str, int], Awaitable[list[str]]]
# An address that refused a connection is skipped this long (unless no other is left).
DOWN_FOR_S = 5.0


def split_targets(url: str) -> list[tuple[str, int]]:
    """``host:port[,host:port...]`` (an optional ``http://`` each) as (host, port) pairs."""
    targets = []
    for item in url.split(","):
        item = item.strip().removeprefix("http://").rstrip("/")
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit() or not host or not 0 < int(port) < 65536:
            raise ValueError(f"Triton address {item!r} is not host:port")
        targets.append((host.strip("[]"), int(port)))
    if not targets:
        raise ValueError("no Triton address given")
    return targets


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def resolve_all(host: str, port: int) -> list[str]:
    """Every address the name has now (a headless Service: one per ready pod), as host:port."""
    try:
        ipaddress.ip_address(host)
        return [_join(host, port)]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({_join(str(info[4][0]), port) for info in infos})


@dataclass(eq=False)
class Endpoint:
    address: str
    client: aioclient.InferenceServerClient
    inflight: int = 0
    down_until: float = 0.0
    retired: bool = False


class Endpoints:
    """The Triton addresses in use, each with its own client (connection pool)."""

    def __init__(self, url: str, balance: str = "off", resolve_every_s: float = 5.0, conn_timeout: float = 30.0,
                 resolver: Resolver | None = None):
        self._targets = split_targets(url)
        self.balance = balance
        self._every = resolve_every_s
        self._conn_timeout = conn_timeout
        self._resolver = resolver or resolve_all
        self._live: dict[str, Endpoint] = {}
        self._retired: list[Endpoint] = []
        self._resolved_at = -1e9
        self._refreshing: asyncio.Task | None = None
        self._turn = itertools.count()
        self.label = ",".join(_join(h, p) for h, p in self._targets)
        self.changes = 0  # address set changes seen (logged)
        self._calls: dict[str, int] = {}  # calls sent to each address so far, closed ones included

    @property
    def single(self) -> bool:
        return self.balance == "off" and len(self._targets) == 1

    def _client(self, address: str) -> aioclient.InferenceServerClient:
        import tritonclient.http.aio as aioclient

        return aioclient.InferenceServerClient(address, conn_timeout=self._conn_timeout)

    async def refresh(self) -> None:
        """Resolve the targets now and take the answer: new addresses get a client, addresses
        gone are retired (closed once idle). A failed resolution keeps the addresses known."""
        self._resolved_at = time.monotonic()
        if self.balance == "off":
            found = [_join(h, p) for h, p in self._targets]
        else:
            found = []
            for host, port in self._targets:
                try:
                    found += await self._resolver(host, port)
                except OSError as exc:  # no answer (a headless Service with no ready pod: NXDOMAIN)
                    log.info("Triton host %s did not resolve (%s)", host, type(exc).__name__)
            if not found and self._live:
                log.warning("no Triton address resolved; keeping the %d known", len(self._live))
                return
        wanted = set(found)
        added = sorted(wanted - self._live.keys())
        gone = sorted(self._live.keys() - wanted)
        for address in added:
            self._live[address] = Endpoint(address, self._client(address))
        for address in gone:
            endpoint = self._live.pop(address)
            endpoint.retired = True
            self._retired.append(endpoint)
        if added or gone:
            self.changes += 1
            log.info("Triton addresses: %s", ", ".join(sorted(self._live)) or "none")
        await self._close_idle()

    def _maybe_refresh(self) -> None:
        if self.balance == "off" or time.monotonic() - self._resolved_at < self._every:
            return
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self.refresh())

    async def _close_idle(self) -> None:
        idle = [e for e in self._retired if e.inflight == 0]
        self._retired = [e for e in self._retired if e.inflight > 0]
        for endpoint in idle:
            await endpoint.client.close()

    async def all(self) -> list[Endpoint]:
        """Every live address (resolving first if never done or due)."""
        if not self._live:
            await self.refresh()
        else:
            self._maybe_refresh()
        return list(self._live.values())

    async def pick(self) -> Endpoint | None:
        """The live address with the fewest calls in flight (skipping those marked down unless
        none is left); None when no address is known."""
        endpoints = await self.all()
        if not endpoints:
            return None
        now = time.monotonic()
        up = [e for e in endpoints if e.down_until <= now] or endpoints
        fewest = min(e.inflight for e in up)
        tied = [e for e in up if e.inflight == fewest]
        return tied[next(self._turn) % len(tied)]

    def mark_down(self, endpoint: Endpoint) -> None:
        endpoint.down_until = time.monotonic() + DOWN_FOR_S
        if self.balance != "off":
            self._resolved_at = -1e9  # resolve again at the next call

    def begin(self, endpoint: Endpoint) -> None:
        endpoint.inflight += 1
        self._calls[endpoint.address] = self._calls.get(endpoint.address, 0) + 1

    async def end(self, endpoint: Endpoint) -> None:
        endpoint.inflight -= 1
        if endpoint.retired and endpoint.inflight == 0:
            await self._close_idle()

    def counts(self) -> dict[str, int]:
        """Calls sent to each address so far (closed ones included)."""
        return dict(self._calls)

    async def close(self) -> None:
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()
        for endpoint in [*self._live.values(), *self._retired]:
            await endpoint.client.close()
        self._live.clear()
        self._retired.clear()
