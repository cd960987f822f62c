"""The Athena views in template.yaml are the ones crates/core/src/views.rs
defines (and the local DataFusion views run), created at deploy time."""

from __future__ import annotations

import base64
import json
import re

import pytest

import views as v
from helpers import ROOT

LOGICAL_IDS = {"sentiment_latest": "SentimentLatestView", "daily_sentiment": "DailySentimentView"}


def resolve(value, conditions: dict[str, bool]):
    """`value` as CloudFormation evaluates it when each condition has the given value."""
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            cond, yes, no = value["Fn::If"]
            return resolve(yes if conditions[cond] else no, conditions)
        return {k: resolve(x, conditions) for k, x in value.items()}
    if isinstance(value, list):
        return [resolve(x, conditions) for x in value]
    return value


def deployed(resource: dict, fmt: str = "hive", include_text: bool = True) -> dict:
    """The resource of a stack deployed with TableFormat=fmt, IncludeText=include_text."""
    return resolve(resource, {"UseDelta": fmt == "delta", "KeepText": include_text})


def view_json(resource: dict) -> str:
    """The Fn::Sub text inside `!Join ["", ["/* Presto View: ", !Base64 !Sub ..., " */"]]`."""
    sep, parts = resource["Properties"]["TableInput"]["ViewOriginalText"]["Fn::Join"]
    assert sep == "" and parts[0] == "/* Presto View: " and parts[2] == " */"
    return parts[1]["Fn::Base64"]["Fn::Sub"]


def test_the_rust_definitions_parse():
    found = v.views()
    assert list(found) == ["sentiment_latest", "daily_sentiment"]
    assert "FROM sentiment_latest" in found["daily_sentiment"]["sql"], "daily_sentiment must count latest versions"
    assert "{columns}" not in found["sentiment_latest"]["sql"]


@pytest.mark.parametrize("fmt,include_text", v.VARIANTS)
@pytest.mark.parametrize("name", list(LOGICAL_IDS))
def test_template_view_is_the_shared_definition(resources, template, name, fmt, include_text):
    assert template["Conditions"]["KeepText"] == {"Fn::Equals": [{"Ref": "IncludeText"}, "true"]}
    view = v.views(include_text)[name]
    res = deployed(resources[LOGICAL_IDS[name]], fmt, include_text)
    assert res["Type"] == "AWS::Glue::Table"
    assert res["Properties"]["DatabaseName"] == {"Ref": "GlueDatabase"}
    table = res["Properties"]["TableInput"]
    assert table["Name"] == name
    assert table["TableType"] == "VIRTUAL_VIEW"
    assert table["Parameters"]["presto_view"] == "true"
    assert table["ViewExpandedText"] == "/* Presto View */"
    text = view_json(res)
    expected = v.presto_view_json(view, fmt=fmt)
    assert text == expected, (
        f"{LOGICAL_IDS[name]} differs from crates/core/src/views.rs; "
        f"`python tests/iac/views.py` prints the JSON to paste:\n{expected}"
    )
    # What Athena will decode: the JSON with the database substituted, base64 inside the marker.
    decoded = json.loads(text.replace("${GlueDatabase}", "sentiment_etl"))
    assert decoded["schema"] == "sentiment_etl" and decoded["catalog"] == "awsdatacatalog"
    # The Glue columns are the view's columns, in order, in Hive types.
    columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    assert columns == view["columns"]
    assert [c["name"] for c in decoded["columns"]] == [n for n, _ in columns]
    # Only the database reference is substituted: no other ${...} in the SQL.
    assert re.findall(r"\$\{[^}]*\}", text) == ["${GlueDatabase}"]


def test_a_changed_view_fails_the_check(resources):
    view = dict(v.views()["daily_sentiment"])
    view["sql"] = view["sql"].replace("FROM sentiment_latest", "FROM sentiment")
    assert view_json(resources["DailySentimentView"]) != v.presto_view_json(view)


def test_each_variant_selects_only_columns_its_table_has_in_its_readers_types(resources):
    for fmt, include_text in v.VARIANTS:
        res = deployed(resources["SentimentLatestView"], fmt, include_text)
        decoded = json.loads(view_json(res).replace("${GlueDatabase}", "db"))
        names = [c["name"] for c in decoded["columns"]]
        assert ("text" in names) == include_text, (fmt, include_text)
        assert (" text," in decoded["originalSql"]) == include_text, (fmt, include_text)
        stamps = {c["type"] for c in decoded["columns"] if c["name"].endswith("_at")}
        assert stamps == {"timestamp(3) with time zone" if fmt == "delta" else "timestamp(3)"}, (fmt, stamps)


def test_a_dt_filter_is_on_a_partitioning_column_of_the_window():
    # Engines push a filter on a window's PARTITION BY columns below it.
    sql = v.views()["sentiment_latest"]["sql"]
    assert "PARTITION BY id, dt ORDER BY" in sql, sql


def test_a_base64_envelope_decodes_to_the_sql():
    # The shape Athena reads: "/* Presto View: " + base64(JSON) + " */".
    view = v.views()["sentiment_latest"]
    envelope = "/* Presto View: " + base64.b64encode(v.presto_view_json(view, "db").encode()).decode() + " */"
    inner = re.fullmatch(r"/\* Presto View: ([A-Za-z0-9+/=]+) \*/", envelope).group(1)
    assert json.loads(base64.b64decode(inner))["originalSql"] == view["sql"]


def test_the_consumer_creates_no_views_at_cold_start(resources):
    env = resources["ConsumerFunction"]["Properties"]["Environment"]["Variables"]
    assert "ATHENA_WORKGROUP" not in env
    actions = {
        a
        for p in resources["ConsumerRole"]["Properties"]["Policies"]
        for st in p["PolicyDocument"]["Statement"]
        if isinstance(st, dict) and "Action" in st
        for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
    }
    assert not {a for a in actions if a.startswith("athena:")}
    assert not {"glue:UpdateTable", "glue:GetDatabase"} & actions


def test_docs_say_what_each_view_column_counts():
    for doc in (ROOT / "README.md", ROOT / "docs" / "DEPLOY.md"):
        text = doc.read_text()
        for column in ("records", "avg_compound"):
            assert f"`{column}`" in text, (doc.name, column)
        assert "each id once" in text, doc.name
