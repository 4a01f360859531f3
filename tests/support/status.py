"""The proxy's own status paths, asked as a health checker or Prometheus asks: no keys, a new
connection each time; and one sample of a scraped metrics text."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support.raw_http import Answer, Request, send


def status(port: int, path: str, host: str | None = None, method: str = "GET") -> Answer:
    return send(port, Request(method, path, "", (("Host", host or f"127.0.0.1:{port}"),)))


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the scraped text (0 when absent: a counter never touched)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0
