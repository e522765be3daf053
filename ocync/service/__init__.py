"""``ocync watch`` as a long-running service: the cycle loop, its schedule and backoff, the
health endpoints, Prometheus metrics and JSON logs. The engine does the syncing; this package
only decides when to run it and reports what it did.
"""
