"""Prometheus metrics (prometheus-client), served on their own port
(``serve --metrics-listen HOST:PORT``), off by default.

Multi-process aware: with ``--workers N`` every process (the writer and
each worker) writes its values to files in one directory (the client
library's multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``), and the writer
serves their sum: requests of every worker in one counter. Metrics are
created by ``setup`` (after the mode is chosen), so importing this module
costs nothing, and every recording function is a no-op until then.

What is measured (names and labels; no personal data, no member ids):
- ``loyalty_rpc_requests_total{method,code}``, ``loyalty_rpc_duration_seconds{method}``;
- ``loyalty_refusals_total{reason}``: rate-limited calls and personal data
  refused by the detectors;
- ``loyalty_appender_batch_size``, ``loyalty_appender_commit_seconds``
  (the durable commit of one group), ``loyalty_appender_queue_depth``;
- ``loyalty_log_size{log}``, ``loyalty_checkpoint_age_seconds{log}``,
  ``loyalty_witness_lag{log,witness}`` (entries not yet cosigned),
  ``loyalty_ready`` (1 while the health service says SERVING); sampled by
  the writer every few seconds.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client import values as _values
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.multiprocess import mark_process_dead as _mark_process_dead

__all__ = ["Endpoint", "mark_process_dead", "serve", "setup"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True, slots=True)
class _Metrics:
    requests: Counter
    duration: Histogram
    refusals: Counter
    batch_size: Histogram
    commit_seconds: Histogram
    queue_depth: Gauge
    log_size: Gauge
    checkpoint_age: Gauge
    witness_lag: Gauge
    ready: Gauge


_M: _Metrics | None = None
_REGISTRY: CollectorRegistry | None = None


def setup(multiprocess_dir: Path | None) -> None:
    """Create the metrics, once per process; with ``multiprocess_dir``, in
    the multiprocess mode over that directory."""
    global _M, _REGISTRY
    if _M is not None:
        return
    registry = CollectorRegistry(auto_describe=True)
    if multiprocess_dir is not None:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(multiprocess_dir)
        _values.ValueClass = _values.MultiProcessValue()  # type: ignore[no-untyped-call]
        r: CollectorRegistry | None = None  # values go to files, summed when served
    else:
        r = registry
    live: Final = "livemax"  # gauges in the multiprocess mode: the live writer's value
    _M = _Metrics(
        requests=Counter(
            "loyalty_rpc_requests", "Calls by method and status", ["method", "code"], registry=r
        ),
        duration=Histogram(
            "loyalty_rpc_duration_seconds",
            "Call latency, from the gate to the response",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        ),
        refusals=Counter(
            "loyalty_refusals",
            "Calls refused by abuse limits or data detectors",
            ["reason"],
            registry=r,
        ),
        batch_size=Histogram(
            "loyalty_appender_batch_size",
            "Commands and records per group commit",
            buckets=BATCH_BUCKETS,
            registry=r,
        ),
        commit_seconds=Histogram(
            "loyalty_appender_commit_seconds",
            "Durable commit of one group",
            buckets=LATENCY_BUCKETS,
            registry=r,
        ),
        queue_depth=Gauge(
            "loyalty_appender_queue_depth",
            "Items waiting for the writer",
            multiprocess_mode=live,
            registry=r,
        ),
        log_size=Gauge(
            "loyalty_log_size", "Entries in each log", ["log"], multiprocess_mode=live, registry=r
        ),
        checkpoint_age=Gauge(
            "loyalty_checkpoint_age_seconds",
            "Seconds since each log's newest signed checkpoint (-1: none yet)",
            ["log"],
            multiprocess_mode=live,
            registry=r,
        ),
        witness_lag=Gauge(
            "loyalty_witness_lag",
            "Entries of each log a configured witness has not cosigned yet",
            ["log", "witness"],
            multiprocess_mode=live,
            registry=r,
        ),
        # the least ready process: 0 when any worker (or the writer) is not serving
        ready=Gauge("loyalty_ready", "1 while SERVING", multiprocess_mode="livemin", registry=r),
    )
    if multiprocess_dir is not None:
        MultiProcessCollector(registry, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
    _REGISTRY = registry


@dataclass(slots=True)
class Endpoint:
    """The HTTP server of /metrics (a thread), closed when the server stops."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def serve(listen: str) -> Endpoint:
    """Serve /metrics on ``listen`` (host:port) from a thread."""
    assert _REGISTRY is not None, "metrics.setup first"
    host, _, port = listen.rpartition(":")
    try:
        server, thread = start_http_server(int(port), addr=host.strip("[]"), registry=_REGISTRY)
    except OSError as err:
        raise OSError(f"cannot serve metrics on {listen}: {err.strerror}") from None
    return Endpoint(server, thread)


def mark_process_dead(pid: int, multiprocess_dir: Path) -> None:
    """A worker died: drop its live gauges (its counts stay in the sums)."""
    _mark_process_dead(pid, str(multiprocess_dir))  # type: ignore[no-untyped-call]


def call(method: str, code: str, seconds: float) -> None:
    if _M is not None:
        _M.requests.labels(method, code).inc()
        _M.duration.labels(method).observe(seconds)


def refused(reason: str) -> None:
    if _M is not None:
        _M.refusals.labels(reason).inc()


def batch(size: int, commit_seconds: float) -> None:
    if _M is not None:
        _M.batch_size.observe(size)
        _M.commit_seconds.observe(commit_seconds)


def sample(
    *,
    queue_depth: int,
    log_sizes: dict[str, int],
    checkpoint_ages: dict[str, float],
    witness_lags: dict[tuple[str, str], int],
) -> None:
    if _M is None:
        return
    _M.queue_depth.set(queue_depth)
    for name, size in log_sizes.items():
        _M.log_size.labels(name).set(size)
    for name, age in checkpoint_ages.items():
        _M.checkpoint_age.labels(name).set(age)
    for (name, witness), lag in witness_lags.items():
        _M.witness_lag.labels(name, witness).set(lag)


def ready(serving: bool) -> None:
    if _M is not None:
        _M.ready.set(1 if serving else 0)
