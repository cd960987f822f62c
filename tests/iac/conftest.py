"""Fixtures for the template tests: the template as written and as SAM
transforms it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import ROOT, load_template  # noqa: E402


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def template() -> dict:
    return load_template()


@pytest.fixture(scope="session")
def resources(template) -> dict:
    return template["Resources"]


@pytest.fixture(scope="session")
def transformed(template) -> dict:
    """The CloudFormation that SAM deploys (the Serverless transform, run offline)."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        # Consulted only for managed policy names in `Policies`; the template has none.
        def load(self) -> dict:
            return {}

    sam = json.loads(json.dumps(template))
    # The transform wants packaged code, as `sam package` makes it.
    sam.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = "s3://bucket/code.zip"
    old = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = old or "us-east-1"
    try:
        return transform(sam, {}, NoManagedPolicies())
    finally:
        if old is None:
            del os.environ["AWS_DEFAULT_REGION"]
