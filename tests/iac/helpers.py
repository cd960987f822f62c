"""Helpers for the template tests: paths, tools, reading template.yaml."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A CLI from the interpreter's venv (.venv-iac), else from PATH."""
    local = VENV_BIN / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"`{name}` not found: run `make venv-iac` and pytest from .venv-iac")
    return found


def load_template() -> dict:
    """template.yaml with intrinsics as dicts ({"Ref": ..}, {"Fn::Sub": ..})."""
    import cfnlint.decode

    template, matches = cfnlint.decode.decode(str(TEMPLATE))
    assert not matches, f"template.yaml does not parse: {matches}"
    # Plain dicts/lists/strings instead of cfn-lint's position-tracking nodes.
    return json.loads(json.dumps(template))


def functions(resources: dict) -> dict:
    return {k: v for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}


def refs(value) -> set[str]:
    """Logical ids and parameters an intrinsic expression refers to."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref":
                found.add(v)
            elif k == "Fn::GetAtt":
                found.add(v[0] if isinstance(v, list) else v.split(".")[0])
            elif k == "Fn::Sub":
                text = v[0] if isinstance(v, list) else v
                for name in re.findall(r"\$\{([^}!][^}]*)\}", text):
                    found.add(name.split(".")[0])
                if isinstance(v, list):
                    found |= refs(v[1])
            elif k == "Fn::If":
                found |= refs(v[1]) | refs(v[2])
            else:
                found |= refs(v)
    elif isinstance(value, list):
        for v in value:
            found |= refs(v)
    return found


def as_list(v) -> list:
    return v if isinstance(v, list) else [v]


def conditional(value) -> list[tuple[str | None, object]]:
    """The branches a value can take: [(None, value)] when it is plain, else
    [(condition, value when true), (!condition, value when false)] without
    the AWS::NoValue branch, for `!If [cond, a, b]`."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        cond, yes, no = value["Fn::If"]
        return [(c, v) for c, v in ((cond, yes), ("!" + cond, no)) if v != {"Ref": "AWS::NoValue"}]
    return [(None, value)]


def role_statements(role: dict, with_conditions: bool = False) -> list[tuple]:
    """(policy name, statement) for every inline statement of an AWS::IAM::Role,
    both branches of a conditional (`!If`) statement included; with
    `with_conditions`, (policy name, statement, condition or None)."""
    out = []
    for policy in role["Properties"].get("Policies", []):
        for entry in as_list(policy["PolicyDocument"]["Statement"]):
            for cond, st in conditional(entry):
                out.append((policy["PolicyName"], st, cond) if with_conditions else (policy["PolicyName"], st))
    return out
