"""Drive golf-audit as a user does: a subprocess from the repository root, stdout and exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from functools import cache

import jsonschema

from reports.schema import report_schema
from tests.conftest import ROOT, data_file

CLI = [sys.executable, "cli.py"]


def run_cli(*args: str, env: dict | None = None, timeout: float = 600, cwd=ROOT) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("GOLF_AUDIT_DEBUG", None)
    proc = subprocess.run([*CLI, *args] if cwd == ROOT else [sys.executable, str(ROOT / "cli.py"), *args],
                          cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode == 2:
        assert len(proc.stderr.strip().splitlines()) == 1, f"exit 2 must say why in one line:\n{proc.stderr}"
    return proc


@cache
def report_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(report_schema())


@cache
def sarif_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(data_file("sarif-schema-2.1.0.json").read_text()))


def check_output(fmt: str, out: str, many: bool = False):
    """Validate one format's output; returns the parsed document where there is one."""
    if fmt == "json":
        doc = json.loads(out)
        for d in doc if many else [doc]:
            report_validator().validate(d)
        assert isinstance(doc, list) == many
        return doc
    if fmt == "sarif":
        doc = json.loads(out)
        sarif_validator().validate(doc)
        return doc
    if fmt == "junit":
        root = ET.fromstring(out)
        assert root.tag == "testsuites" and root.findall("testsuite")
        return root
    if fmt == "markdown":
        assert out.startswith("<!-- golf-audit report -->") and "golf-audit:" in out
        return out
    assert fmt == "text"
    assert ("golf-audit scan" in out) if many else out.startswith("verdict: ")
    return out
