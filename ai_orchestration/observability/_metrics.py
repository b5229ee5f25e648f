"""Prometheus metrics of the server, in a registry owned by the server (no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server


class Metrics:
    """RPC counters and latency histograms."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.rpc_total = Counter(
            "aio_rpc_requests",
            "RPCs handled, by method and final status code.",
            ["method", "code"],
            registry=self.registry,
        )
        self.rpc_seconds = Histogram(
            "aio_rpc_duration_seconds",
            "RPC handling time (to the end of the stream for streaming RPCs).",
            ["method"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

    def observe(self, method: str, code: str, seconds: float) -> None:
        """Record one finished RPC."""
        self.rpc_total.labels(method=method, code=code).inc()
        self.rpc_seconds.labels(method=method).observe(seconds)

    def serve_http(self, host: str, port: int) -> None:
        """Expose ``/metrics`` on ``host:port`` (a daemon thread)."""
        start_http_server(port, addr=host, registry=self.registry)
