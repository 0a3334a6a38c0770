"""Governed parts of the repository: suite tests cite their clause, the workflow is valid."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

SUITES = REPO / "conformance" / "suites"


def suite_tests():
    for path in sorted(SUITES.rglob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                yield path.relative_to(SUITES).as_posix(), node


@pytest.mark.parametrize(("path", "node"), list(suite_tests()),
                         ids=[f"{p}::{n.name}" for p, n in suite_tests()])
def test_suite_test_cites_its_clause_and_marks_what_it_exercises(path, node):
    doc = ast.get_docstring(node) or ""
    clause = doc.split(":")[0]
    assert clause.startswith(("PKCS#11 v2.40", "PKCS#11 v3", "Vendor declaration")), (
        f"{path}::{node.name} must start its docstring with the spec clause it enforces")
    source = ast.unparse(node)
    marks = ("mark.function", "mark.mechanism", "mark.object_class", "DIGESTS")
    assert any(m in source for m in marks), (
        f"{path}::{node.name} must mark the functions, mechanisms or objects it exercises")


def test_github_workflow_is_valid():
    beside = Path(sys.executable).parent / "check-jsonschema"  # the venv's, unactivated
    tool = str(beside) if beside.exists() else shutil.which("check-jsonschema")
    assert tool, "check-jsonschema (the dev extra) is needed to validate the workflow"
    done = subprocess.run([tool, "--builtin-schema", "vendor.github-workflows",
                           *map(str, sorted((REPO / ".github" / "workflows").glob("*.yml")))],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
