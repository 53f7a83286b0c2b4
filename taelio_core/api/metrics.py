"""Prometheus metrics for ``GET /metrics``: requests, attempts, fallbacks, errors by type, latency, cost.

Each app has its own registry (tests start several). With ``--workers N``
each worker process counts its own traffic; scrape every worker or run one.
"""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from taelio_core.routing.trace import GenerationResult

__all__ = ["ApiMetrics", "CONTENT_TYPE_LATEST"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter("taelio_http_requests", "HTTP requests answered",
                                     ["method", "route", "status"], registry=r)
        self.http_latency = Histogram("taelio_http_request_seconds", "HTTP request duration",
                                      ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.generations = Counter("taelio_generations", "Routed generation requests by outcome",
                                   ["tier", "task", "status"], registry=r)
        self.attempts = Counter("taelio_attempts", "Provider attempts by outcome",
                                ["provider", "model", "status"], registry=r)
        self.fallbacks = Counter("taelio_fallbacks", "Failed attempts before an answer (fallback depth)",
                                 ["tier", "task"], registry=r)
        self.errors = Counter("taelio_attempt_errors", "Failed attempts by error type",
                              ["provider", "error_type"], registry=r)
        self.generation_latency = Histogram("taelio_generation_seconds", "Routed request latency",
                                            ["tier", "task"], buckets=_LATENCY_BUCKETS, registry=r)
        self.cost = Counter("taelio_cost_usd", "Priced cost of attempts, US dollars", ["provider"], registry=r)

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_latency.labels(route).observe(seconds)

    def observe_result(self, result: GenerationResult) -> None:
        self.generations.labels(result.tier, result.task, result.status).inc()
        self.generation_latency.labels(result.tier, result.task).observe(result.latency_ms / 1000.0)
        if result.fallback_depth:
            self.fallbacks.labels(result.tier, result.task).inc(result.fallback_depth)
        for a in result.attempts:
            self.attempts.labels(a.provider, a.model, a.status).inc()
            if a.error_type:
                self.errors.labels(a.provider, a.error_type).inc()
            if a.cost_usd is not None:
                self.cost.labels(a.provider).inc(float(a.cost_usd))

    def render(self) -> bytes:
        return generate_latest(self.registry)
