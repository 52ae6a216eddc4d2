"""Prometheus metrics: the definitions, the instrumentation helpers other modules call in
one line, the ``GET /metrics`` route and the multi-worker (multiprocess) set-up.

``controlplane.metrics.workers`` must not import ``prometheus_client``: it decides, before
any worker imports it, whether the workers share a multiprocess directory.
"""
