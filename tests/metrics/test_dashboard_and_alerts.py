"""The Grafana dashboard and the Prometheus alert rules use only metrics that a scrape of
the running service exposes: every PromQL expression is parsed (promql-parser, a binding of
a full PromQL parser) and each series it selects must be in the scrape."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from litestar.testing import TestClient

from tests.metrics.scrape import series_names

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "caracal.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
#: Grafana's interval variables, which must be durations for the parser.
_GRAFANA_INTERVALS = re.compile(r"\$\{?(__rate_interval|__interval|__range)\b\}?")
_LABEL_VALUES = re.compile(r"^label_values\((\w+),\s*\w+\)$")


def selected_series(expr: str) -> set[str]:
    """The metric names an expression selects (each vector selector's name)."""
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__":
                    assert matcher.op == promql_parser.MatchOp.Equal, expr
                    names.add(matcher.value)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    every = []
    for panel in panels:
        every.append(panel)
        every += _panels(panel.get("panels", []))
    return every


def dashboard_expressions() -> list[str]:
    """Every target expression of every panel, Grafana's interval variables made 5m."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [
        target["expr"]
        for panel in _panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]
    return [_GRAFANA_INTERVALS.sub("5m", expr) for expr in exprs]


def dashboard_variable_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    names = set()
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = _LABEL_VALUES.match(variable["query"]["query"])
            assert match, variable
            names.add(match.group(1))
    return names


def alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


@pytest.fixture
def scraped(client: TestClient) -> set[str]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return series_names(response.text)


def test_every_dashboard_query_parses_and_uses_scraped_metrics(scraped: set[str]) -> None:
    exprs = dashboard_expressions()
    assert len(exprs) >= 15
    used: set[str] = set()
    for expr in exprs:
        names = selected_series(expr)
        assert names, expr
        assert names <= scraped, (expr, names - scraped)
        used |= names
    assert dashboard_variable_metrics() <= scraped
    # the dashboard shows every caracal metric family
    families = {n for n in scraped if n.startswith("caracal_")}
    shown = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    assert {
        f.removesuffix("_total") for f in families if not f.endswith(("_bucket", "_sum",
                                                                      "_count", "_created"))
    } <= {s.removesuffix("_total") for s in shown}  # fmt: skip


def test_every_alert_rule_parses_and_uses_scraped_metrics(scraped: set[str]) -> None:
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} >= {
        "CaracalOutboxBacklogGrowing",
        "CaracalDecisionLatencyHigh",
        "CaracalHttp5xxRate",
        "CaracalAdminAuthFailureBurst",
    }
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        names = selected_series(rule["expr"])
        assert names, rule["alert"]
        assert names <= scraped, (rule["alert"], names - scraped)
    backlog = next(r for r in rules if r["alert"] == "CaracalOutboxBacklogGrowing")
    assert backlog["for"] == "5m"


def test_the_check_catches_a_misspelt_metric(scraped: set[str]) -> None:
    names = selected_series("sum(rate(caracal_decision_total[5m])) + caracal_outbox_pending")
    assert names == {"caracal_decision_total", "caracal_outbox_pending"}
    assert not names <= scraped
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(caracal_decisions_total[5m])")
