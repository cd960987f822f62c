"""The alarms and the dashboard name only metrics the Rust code emits.

A metric renamed in the code (or a typo in the template) leaves an alarm that
never sees data and a dashboard line that stays empty, and nothing says so:
this test reads the names from the code instead.

How the emitted metrics are found: every `Metrics::new("<function>")` builder
in crates/*/src with its `.count("<Name>", ..)` / `.bytes("<Name>", ..)`
calls, test code (`#[cfg(test)]`) removed, gives (function, name) pairs; the
`Function` dimension of a metric in the template must match.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import rust_calls as rc
from helpers import ROOT

NAMESPACE = "SentimentEtl"

_BUILDER = re.compile(r'Metrics::new\(\s*"([a-z0-9_-]+)"\s*\)')
_METRIC = re.compile(r'\.\s*(?:count|bytes)\(\s*"([A-Za-z0-9]+)"')


def _chain_end(src: str, start: int) -> int:
    """Where the method chain starting at `start` ends: a `;` at its own
    nesting level, or the brace closing the block it is in."""
    depth = 0
    for i in range(start, len(src)):
        c = src[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                return i
        elif c == ";" and depth == 0:
            return i
    return len(src)


def emitted_in(src: str) -> set[tuple[str, str]]:
    """(function, metric) pairs of the metrics builders in one Rust file."""
    src = rc.strip_cfg_gated_items(src)
    found = set()
    for m in _BUILDER.finditer(src):
        chain = src[m.end() : _chain_end(src, m.end())]
        found |= {(m.group(1), name) for name in _METRIC.findall(chain)}
    return found


def emitted_metrics(root: Path = ROOT) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for f in sorted((root / "crates").glob("*/src/**/*.rs")):
        found |= emitted_in(f.read_text(encoding="utf-8"))
    return found


def substitute(text: str) -> str:
    """A Fn::Sub string with every ${...} replaced by a marker of what it named."""
    return re.sub(r"\$\{([^}!][^}]*)\}", lambda m: f"<{m.group(1)}>", text)


def dimension(dims: list, name: str):
    for d in dims:
        if d["Name"] == name:
            v = d["Value"]
            return v if isinstance(v, str) else json.dumps(v)
    return None


def alarm_metrics(resources: dict) -> list[tuple[str, str, str | None, str | None]]:
    """(alarm, namespace, metric, Function dimension) of every alarm's metrics."""
    out = []
    for name, res in resources.items():
        if res["Type"] != "AWS::CloudWatch::Alarm":
            continue
        p = res["Properties"]
        if "MetricName" in p:
            out.append((name, p["Namespace"], p["MetricName"], dimension(p.get("Dimensions", []), "Function"), p.get("Dimensions", [])))
        for m in p.get("Metrics", []):
            if "MetricStat" in m:
                metric = m["MetricStat"]["Metric"]
                dims = metric.get("Dimensions", [])
                out.append((name, metric["Namespace"], metric["MetricName"], dimension(dims, "Function"), dims))
    return out


def dashboard_metrics(body: dict) -> list[tuple[str, str, str, dict]]:
    """(widget title, namespace, metric, dimensions) of every metric a dashboard plots,
    with CloudWatch's shorthand expanded ("." repeats the same position of the
    entry above, "..." its whole remainder)."""
    out = []
    for widget in body["widgets"]:
        props = widget.get("properties", {})
        prev: list = []
        for entry in props.get("metrics", []):
            items = [e for e in entry if not isinstance(e, dict)]
            if not items:
                continue  # an expression
            if items[0] == "...":
                items = prev + items[1:]
            items = [prev[i] if v == "." and i < len(prev) else v for i, v in enumerate(items)]
            prev = items
            namespace, metric, rest = items[0], items[1], items[2:]
            out.append((props.get("title", ""), namespace, metric, dict(zip(rest[::2], rest[1::2]))))
    return out


@pytest.fixture(scope="module")
def emitted() -> set[tuple[str, str]]:
    found = emitted_metrics()
    assert ("producer", "RecordsRead") in found and ("consumer", "MessagesIn") in found, (
        f"the extractor found {sorted(found)}: is it still right?"
    )
    return found


@pytest.fixture(scope="module")
def dashboard(resources) -> dict:
    return json.loads(substitute(resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]))


def test_alarms_name_only_metrics_the_code_emits(resources, emitted):
    ours = [a for a in alarm_metrics(resources) if a[1] == NAMESPACE]
    assert len({a[0] for a in ours}) >= 5
    unknown = [f"{alarm}: {fn}/{metric}" for alarm, _, metric, fn, _ in ours if (fn, metric) not in emitted]
    assert not unknown, f"alarms on metrics no code emits: {unknown}; emitted: {sorted(emitted)}"
    for alarm, _, metric, _, dims in ours:
        # The EMF lines carry Stack and Function: a metric without both is another series.
        assert {d["Name"] for d in dims} == {"Stack", "Function"}, alarm
        assert [d["Value"] for d in dims if d["Name"] == "Stack"] == [{"Ref": "AWS::StackName"}], alarm


def test_dashboard_names_only_metrics_the_code_emits(dashboard, emitted):
    plotted = dashboard_metrics(dashboard)
    ours = [p for p in plotted if p[1] == NAMESPACE]
    unknown = [f"{title}: {dims.get('Function')}/{metric}" for title, _, metric, dims in ours if (dims.get("Function"), metric) not in emitted]
    assert not unknown, f"dashboard plots metrics no code emits: {unknown}; emitted: {sorted(emitted)}"
    for title, _, metric, dims in ours:
        assert set(dims) == {"Stack", "Function"} and dims["Stack"] == "<AWS::StackName>", (title, metric, dims)
    # AWS metrics name this stack's own resources.
    for title, namespace, metric, dims in plotted:
        if namespace == "AWS/SQS":
            assert dims["QueueName"] in ("<WorkQueue.QueueName>", "<WorkDeadLetterQueue.QueueName>"), title
        elif namespace == "AWS/Lambda":
            assert dims["FunctionName"] in ("<ConsumerFunction>", "<ProducerFunction>"), title
        else:
            assert namespace == NAMESPACE, (title, namespace)


def test_dashboard_shows_what_the_issue_asks_for(dashboard):
    plotted = {(ns, m, d.get("Function") or d.get("QueueName") or d.get("FunctionName")) for _, ns, m, d in dashboard_metrics(dashboard)}
    for want in [
        (NAMESPACE, "RecordsRead", "producer"),
        (NAMESPACE, "RecordsSent", "producer"),
        (NAMESPACE, "RecordsRejected", "producer"),
        (NAMESPACE, "RecordsOut", "consumer"),
        (NAMESPACE, "MessagesFailed", "consumer"),
        (NAMESPACE, "ComprehendUnits", "consumer"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "<WorkDeadLetterQueue.QueueName>"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", "<WorkQueue.QueueName>"),
        ("AWS/Lambda", "Duration", "<ConsumerFunction>"),
    ]:
        assert want in plotted, want
    widgets = {w["type"]: w for w in dashboard["widgets"]}
    # Estimated dollars from the units; memory from the consumer's platform.report lines.
    exprs = [e["expression"] for w in dashboard["widgets"] for m in w["properties"].get("metrics", []) for e in m if isinstance(e, dict) and "expression" in e]
    assert any("units" in e and "0.0001" in e for e in exprs)
    assert "maxMemoryUsedMB" in widgets["log"]["properties"]["query"]
    assert "<ConsumerLogGroup>" in widgets["log"]["properties"]["query"]


def test_the_extractor_reads_builders_and_ignores_test_code(tmp_path):
    src = '''
        fn metrics(&self) -> Metrics {
            Metrics::new("producer")
                .count("RecordsRead", self.read)
                .bytes("BytesWritten", 1)
                .count("RunsCompleted", u64::from(self.status == Status::Complete && !self.mode.is_empty()))
        }
        #[cfg(test)]
        mod tests {
            fn t() { Metrics::new("producer").count("OnlyInTests", 1); }
        }
    '''
    assert emitted_in(src) == {("producer", "RecordsRead"), ("producer", "BytesWritten"), ("producer", "RunsCompleted")}


def test_a_metric_the_code_does_not_emit_is_reported(resources, emitted):
    body = {"widgets": [{"type": "metric", "properties": {"title": "t", "metrics": [
        ["SentimentEtl", "RecordsRead", "Stack", "<AWS::StackName>", "Function", "producer"],
        [".", "RecordsScored", ".", ".", ".", "."],
        ["...", {"stat": "p99"}],
    ]}}]}
    plotted = dashboard_metrics(body)
    assert [(m, d["Function"]) for _, _, m, d in plotted] == [
        ("RecordsRead", "producer"), ("RecordsScored", "producer"), ("RecordsScored", "producer")]
    assert [m for _, _, m, d in plotted if (d["Function"], m) not in emitted] == ["RecordsScored", "RecordsScored"]
