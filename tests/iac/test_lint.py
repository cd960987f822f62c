"""The template passes cfn-lint, `sam validate --lint` and checkov, and every
checkov check it opts out of says why."""

from __future__ import annotations

import json
import os
import re
import subprocess

from helpers import ROOT, TEMPLATE, tool

# cfn-lint warnings accepted on purpose: rule id -> why. Empty: none today.
ACCEPTED_CFN_LINT_WARNINGS: dict[str, str] = {}

OFFLINE_ENV = {
    **os.environ,
    "SAM_CLI_TELEMETRY": "0",
    "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
}


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=OFFLINE_ENV, capture_output=True, text=True, timeout=600, check=False)


def test_cfn_lint_reports_no_errors_and_only_accepted_warnings():
    proc = run([tool("cfn-lint"), "--format", "json", str(TEMPLATE)])
    assert proc.returncode < 16, proc.stderr  # a bit mask: 2 errors, 4 warnings, 8 informational
    matches = json.loads(proc.stdout or "[]")
    errors = [m for m in matches if m["Level"] == "Error"]
    warnings = [m for m in matches if m["Level"] == "Warning" and m["Rule"]["Id"] not in ACCEPTED_CFN_LINT_WARNINGS]
    show = lambda ms: "\n".join(  # noqa: E731
        f'{m["Rule"]["Id"]} line {m["Location"]["Start"]["LineNumber"]}: {m["Message"]}' for m in ms
    )
    assert not errors, "cfn-lint errors:\n" + show(errors)
    assert not warnings, "cfn-lint warnings (fix, or accept in ACCEPTED_CFN_LINT_WARNINGS with a reason):\n" + show(
        warnings
    )


def test_sam_validate_lint_passes():
    proc = run([tool("sam"), "validate", "--lint", "--template-file", str(TEMPLATE)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "is a valid SAM Template" in proc.stdout + proc.stderr


def test_checkov_reports_no_failed_check():
    proc = run(
        [
            tool("checkov"),
            "-f",
            str(TEMPLATE),
            "--framework",
            "cloudformation",
            "--skip-download",
            "--output",
            "json",
        ]
    )
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    summary = report["summary"]
    failed = [f'{c["check_id"]} {c["resource"]}: {c["check_name"]}' for c in report["results"]["failed_checks"]]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0
    assert not failed, "checkov failed checks (fix, or skip in the resource's Metadata with a reason):\n" + "\n".join(
        failed
    )


def test_every_checkov_skip_states_its_reason(resources):
    skips = 0
    for name, res in resources.items():
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
            skips += 1
            assert skip["id"].startswith("CKV"), (name, skip)
            assert len(skip.get("comment", "").split()) >= 5, f"{name}: skip of {skip['id']} needs a real reason"
    assert skips > 0


def test_tool_versions_are_pinned_exactly():
    """Unpinned tools drift: a new cfn-lint adds rules, a new zig breaks cross-builds."""
    for name in ("requirements.txt", "requirements-iac.txt"):
        for line in (ROOT / "tools" / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line:
                assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][0-9A-Za-z.+\-]*", line), f"{name}: {line!r} is not an exact pin"
