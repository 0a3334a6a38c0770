"""Governed parts of the repository: suite tests cite their clause, the workflow is valid."""

from __future__ import annotations

import importlib
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from conformance.returncodes import SEVERITIES

SUITES = REPO / "conformance" / "suites"
MARKERS = {"mechanism", "mechanisms", "function", "object_class"}


def _listed(marks):
    """pytestmark is a list of marks, or a single one."""
    return list(marks) if isinstance(marks, list) else [marks]


def suite_tests():
    for path in sorted(SUITES.rglob("test_*.py")):
        relative = path.relative_to(SUITES)
        module = importlib.import_module(
            "conformance.suites." + ".".join(relative.with_suffix("").parts))
        for name, function in sorted(vars(module).items()):
            if name.startswith("test_") and inspect.isfunction(function):
                marks = _listed(getattr(module, "pytestmark", [])) + _listed(
                    getattr(function, "pytestmark", []))
                names = {m.name for m in marks}
                for mark in marks:  # marks carried by pytest.param(..., marks=...)
                    if mark.name == "parametrize":
                        names |= {m.name for value in mark.args[1]
                                  for m in getattr(value, "marks", ())}
                yield f"{relative.as_posix()}::{name}", function, names


@pytest.mark.parametrize(("case", "function", "marks"), list(suite_tests()),
                         ids=[case for case, _, _ in suite_tests()])
def test_suite_test_cites_its_clause_and_marks_what_it_exercises(case, function, marks):
    clause = (inspect.getdoc(function) or "").split(":")[0]
    assert clause.startswith(("PKCS#11 v2.40", "PKCS#11 v3", "Vendor declaration")), (
        f"{case} must start its docstring with the spec clause it enforces")
    assert marks & MARKERS, (
        f"{case} must mark the functions, mechanisms or objects it exercises")


@pytest.mark.parametrize(("case", "function", "marks"), list(suite_tests()),
                         ids=[case for case, _, _ in suite_tests()])
def test_suite_test_severity_is_one_of_the_four(case, function, marks):
    """A check declares its severity with the severity marker (none: must)."""
    module = sys.modules[function.__module__]
    for mark in _listed(getattr(module, "pytestmark", [])) + _listed(
            getattr(function, "pytestmark", [])):
        if mark.name == "severity":
            assert mark.args and mark.args[0] in SEVERITIES, f"{case}: {mark}"


@pytest.mark.parametrize("name", ["test_pairwise", "test_clients"])
def test_interop_tests_cite_their_clause(name):
    module = importlib.import_module(f"conformance.interop.{name}")
    for test, function in sorted(vars(module).items()):
        if test.startswith("test_") and inspect.isfunction(function):
            clause = (inspect.getdoc(function) or "").split(":")[0]
            assert clause.startswith("PKCS#11 v"), (
                f"{name}.py::{test} must start its docstring with the spec clause it enforces")


def test_github_workflow_is_valid():
    beside = Path(sys.executable).parent / "check-jsonschema"  # the venv's, unactivated
    tool = str(beside) if beside.exists() else shutil.which("check-jsonschema")
    assert tool, "check-jsonschema (the dev extra) is needed to validate the workflow"
    done = subprocess.run([tool, "--builtin-schema", "vendor.github-workflows",
                           *map(str, sorted((REPO / ".github" / "workflows").glob("*.yml")))],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
