"""Every metric the service exposes (documented in docs/observability.md).

Labels carry only bounded values: no zone id, token, subject or path parameter ever
becomes a label, so a scrape stays small with 100,000 zones. Labelled children that are
used on hot paths are bound once (``.labels(...)`` costs a lock and a dict build per call).
Gauges name their multiprocess mode: how a scrape combines the workers' values.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# No ``*_created`` series: they double the counter and histogram series of a scrape, and
# multiprocess mode (several workers) has none, so a scrape looks the same in both modes.
disable_created_metrics()

#: Decisions run from tens of microseconds (evaluation) to the audit group commit (ms).
DECISION_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip
EVALUATION_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.1,
)  # fmt: skip
#: The group-commit writer takes at most 500 rows per INSERT.
AUDIT_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)
AUDIT_WRITE_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
)  # fmt: skip
#: Outbox rows are normally published within milliseconds; retries back off up to a minute.
PUBLISH_LAG_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)  # fmt: skip
#: The activating process installs at once; others on the NOTIFY or the 0.5 s reconciliation.
ACTIVATION_LAG_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
HTTP_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
)  # fmt: skip

DECISION_OUTCOMES = ("allow", "deny", "partial")
DECISION_SOURCES = ("api", "batch")
AUTH_FAILURE_REASONS = ("missing", "invalid", "expired", "revoked", "forbidden")
POOL_STATES = ("idle", "busy", "waiting")

DECISIONS = Counter(
    "caracal_decisions_total",
    "Decisions answered, by outcome and by endpoint (api: one decision, batch: batch item).",
    ("decision", "source"),
)
DECISION_DURATION = Histogram(
    "caracal_decision_duration_seconds",
    "Decision handler time, from the request read to the answer (audit write included).",
    buckets=DECISION_BUCKETS,
)
POLICY_EVALUATION_DURATION = Histogram(
    "caracal_policy_evaluation_duration_seconds",
    "Rego evaluation of a decision's active set (and its shadow set, when one is active).",
    buckets=EVALUATION_BUCKETS,
)
AUDIT_WRITE_BATCH_ROWS = Histogram(
    "caracal_audit_write_batch_rows",
    "Decision audit rows per group-commit INSERT.",
    buckets=AUDIT_BATCH_BUCKETS,
)
AUDIT_WRITE_DURATION = Histogram(
    "caracal_audit_write_duration_seconds",
    "Duration of one group-commit INSERT of decision audit rows (failed ones included).",
    buckets=AUDIT_WRITE_BUCKETS,
)
OUTBOX_PENDING = Gauge(
    "caracal_outbox_pending_messages",
    "Outbox rows not yet published, as last counted by a relay of this service.",
    multiprocess_mode="livemostrecent",
)
OUTBOX_PUBLISH_LAG = Histogram(
    "caracal_outbox_publish_lag_seconds",
    "Time from an outbox row's creation to its publication, by publisher.",
    ("publisher",),
    buckets=PUBLISH_LAG_BUCKETS,
)
POLICY_ACTIVATION_LAG = Histogram(
    "caracal_policy_activation_lag_seconds",
    "Time from a policy-set activation to the new set being in force in this process.",
    buckets=ACTIVATION_LAG_BUCKETS,
)
POLICY_SETS_LOADED = Gauge(
    "caracal_policy_sets_loaded",
    "Zones with a compiled active policy set in memory (summed over worker processes).",
    multiprocess_mode="livesum",
)
HTTP_REQUESTS = Counter(
    "caracal_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ("method", "route", "status"),
)
HTTP_REQUEST_DURATION = Histogram(
    "caracal_http_request_duration_seconds",
    "HTTP request duration (first byte in to last byte out), by method and route template.",
    ("method", "route"),
    buckets=HTTP_BUCKETS,
)
DB_POOL_CONNECTIONS = Gauge(
    "caracal_db_pool_connections",
    "Connections of the database pool by state; waiting counts requests queued for one.",
    ("state",),
    multiprocess_mode="livesum",
)
ADMIN_AUTH_FAILURES = Counter(
    "caracal_admin_auth_failures_total",
    "Admin API requests refused by the token guard, by reason.",
    ("reason",),
)

# Every labelled series exists from the start (at zero), so rate() and alerts see it.
for _source in DECISION_SOURCES:
    for _outcome in DECISION_OUTCOMES:
        DECISIONS.labels(_outcome, _source)
for _reason in AUTH_FAILURE_REASONS:
    ADMIN_AUTH_FAILURES.labels(_reason)
for _state in POOL_STATES:
    DB_POOL_CONNECTIONS.labels(_state)
