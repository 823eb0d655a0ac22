#!/usr/bin/env python3
"""Scrape mcpinit's metrics endpoint and parse it with prometheus_client's own parsers.

    scrape.py URL prometheus|openmetrics

Prints one JSON object: the HTTP status, the content type, and every sample as
[name, labels, value], as the parser understood them. Any parse error is fatal
(exit 1): the point is that a real Prometheus client library accepts the text.
"""
import json
import sys
import urllib.request

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as prometheus_families


def scrape(url, fmt):
    """(status, content type, {family: {type, samples}}, text) of one scrape."""
    request = urllib.request.Request(url)
    if fmt == "openmetrics":
        request.add_header("Accept", "application/openmetrics-text; version=1.0.0")
    with urllib.request.urlopen(request, timeout=10) as reply:
        status = reply.status
        content_type = reply.headers.get("Content-Type", "")
        text = reply.read().decode("utf-8")
    parse = openmetrics_families if fmt == "openmetrics" else prometheus_families
    families = {}
    for family in parse(text):
        families[family.name] = {
            "type": family.type,
            "samples": [[s.name, s.labels, s.value] for s in family.samples],
        }
    return status, content_type, families, text


def main():
    status, content_type, families, _ = scrape(sys.argv[1], sys.argv[2])
    json.dump(
        {"status": status, "content_type": content_type, "families": families},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
