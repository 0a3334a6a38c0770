"""`pkcs11-conformance explain TEST-ID`: what a check enforces and why a module may fail it.

A check's docstring starts with the clause it enforces; the text before the first colon
is its spec reference (as the plugin records it) and the rest says what must hold. The
markers say which mechanisms, functions, object classes and attributes the check needs
claimed. The check is found by importing its suite module (conformance.suites.<area>.
<module>), so nothing here runs a module.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .loading import ConfigError
from .plugin import PARAMETER_FIXTURES, SUITES_DIR

# Why a module typically fails a check of each area, besides the check's own clause.
AREA_NOTES: dict[str, str] = {
    "attributes": "the module reveals or changes an attribute the spec protects "
    "(CKA_SENSITIVE, CKA_EXTRACTABLE and their history), does not enforce a usage flag, or "
    "reports an unavailable attribute other than per attribute.",
    "digest": "the digest differs from hashlib's, or single-part and multi-part digests "
    "of the same data differ.",
    "encrypt": "the module's ciphertext does not decrypt with cryptography (or the "
    "reverse): wrong padding, IV, counter or tag handling; or malformed input is refused "
    "with another code than the spec prescribes.",
    "errors": "a bad handle, a missing or active operation or a too-small buffer is "
    "answered with another code than the spec prescribes; modules that map every failure "
    "to CKR_GENERAL_ERROR fail here.",
    "keygen": "a generated key lacks the size, attributes or usage the template asked "
    "for, or cryptography does not accept the public key.",
    "mechanisms": "what C_GetMechanismList and C_GetMechanismInfo advertise disagrees "
    "with the vendor's claims or with the mechanism's kind; if the claim is wrong, fix the "
    "vendor file, otherwise applications that trust these flags will misbehave.",
    "module": "C_GetInfo, the slot and token information or the function list break a "
    "format rule (blank padding, versions, flags), or a PKCS#11 3.x feature a profile "
    "requires (interfaces, profile objects) is missing.",
    "objects": "creating, copying, finding or destroying objects behaves differently from "
    "the spec, e.g. private objects visible before login or a copy that ignores its "
    "template.",
    "random": "C_GenerateRandom returns the wrong length or repeats itself, or "
    "C_SeedRandom answers with a code the spec does not allow.",
    "sessions": "the session and login state machine differs from the spec: a call is "
    "accepted in a state where it must be refused, or C_GetSessionInfo reports another "
    "state.",
    "sign": "a signature or MAC made by the module does not verify with cryptography, "
    "hmac or hashlib, or the module accepts an altered signature, or rejects a valid one.",
    "variants": "for a claimed mechanism, a parameter variant the vendor does not claim "
    "was neither refused with a CKR error nor handled correctly: the call succeeded with a "
    "wrong result (silent misbehaviour).",
    "vectors": "the module disagrees with a NIST known-answer vector.",
    "wrap": "the wrapped key is not in the format the mechanism defines, unwrapping "
    "ignores the template, or a refusal carries the wrong code.",
}
LISTED = 24  # mechanisms shown for a check that runs once per mechanism
OUTCOME_NOTE = ("The case runs only when the vendor claims what its markers name; a "
                "profile-required but unclaimed case fails without running, anything else "
                "unclaimed is skipped.")


@dataclass(frozen=True)
class Check:
    area: str
    module: str  # file name, e.g. test_sign_rsa.py
    name: str
    function: Callable[..., Any]
    module_doc: str

    @property
    def id(self) -> str:
        return f"{self.area}/{self.module}::{self.name}"


def _suite_files() -> list[tuple[str, str]]:
    return sorted((p.parent.name, p.stem) for p in SUITES_DIR.glob("*/test_*.py"))


def _load(area: str, stem: str) -> Any:
    return importlib.import_module(f"conformance.suites.{area}.{stem}")


def _tests(module: Any) -> dict[str, Callable[..., Any]]:
    return {name: obj for name, obj in vars(module).items()
            if name.startswith("test_") and inspect.isfunction(obj)}


def find(test_id: str) -> tuple[Check, str]:
    """The check a case id, a test id or a bare test name names, and the case's
    parameters ('' when none were given). ConfigError when there is not exactly one."""
    text = test_id.strip()
    if len(text) > 1000:  # no case id is this long; difflib would take its time over it
        raise ConfigError("explain", "", f"a test id of {len(text)} characters is not a "
                          "test id")
    match = re.fullmatch(r"(?:(?P<file>[^:\[]+)::)?(?P<name>[A-Za-z0-9_]+)(?:\[(?P<params>.*)\])?",
                         text)
    if not match:
        raise ConfigError("explain", "", f"{test_id!r} is not a test id such as "
                          "sign/test_sign_rsa.py::test_name[...] or a test name")
    name, params = match.group("name"), match.group("params") or ""
    files = _suite_files()
    if match.group("file"):
        path = match.group("file").replace("\\", "/").split("suites/")[-1]
        parts = path.removesuffix(".py").split("/")
        if len(parts) != 2 or (parts[0], parts[1]) not in files:
            raise ConfigError("explain", "", f"no suite file {match.group('file')!r} "
                              "(suite files look like sign/test_sign_rsa.py)")
        files = [(parts[0], parts[1])]
    found: list[Check] = []
    every: list[str] = []
    for area, stem in files:
        module = _load(area, stem)
        tests = _tests(module)
        every += tests
        if name in tests:
            found.append(Check(area, f"{stem}.py", name, tests[name], module.__doc__ or ""))
    if len(found) == 1:
        return found[0], params
    if found:
        raise ConfigError("explain", "", f"{name!r} is in several files: "
                          f"{', '.join(c.id for c in found)}; give the file too")
    close = difflib.get_close_matches(name, every, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ConfigError("explain", "", f"no test named {name!r}{hint}")


def _paragraphs(doc: str) -> list[str]:
    text = inspect.cleandoc(doc)
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def _marks(function: Callable[..., Any]) -> dict[str, list[str]]:
    """Marker arguments by marker name, the marker nearest the function first."""
    out: dict[str, list[str]] = {}
    for mark in getattr(function, "pytestmark", []):
        if mark.name == "parametrize":  # only the argument names: the values are code
            names = mark.args[0]
            names = names.split(",") if isinstance(names, str) else names
            out.setdefault("parametrize", []).extend(str(n).strip() for n in names)
        else:
            out.setdefault(mark.name, []).extend(str(a) for a in mark.args)
    return out


def _wrap(label: str, text: str) -> list[str]:
    return textwrap.wrap(text, width=92, initial_indent=f"{label:<13}",
                         subsequent_indent=" " * 13) or [label]


def explain(test_id: str) -> str:
    check, params = find(test_id)
    paragraphs = _paragraphs(check.function.__doc__ or "")
    first = paragraphs[0] if paragraphs else ""
    clause, _, checks = first.partition(":")
    marks = _marks(check.function)
    lines = [check.id + (f"[{params}]" if params else ""), ""]
    lines += _wrap("Spec clause:", clause.strip() or "(no docstring)")
    lines += _wrap("Checks:", checks.strip() or "(not stated)")
    for extra in paragraphs[1:]:
        lines += _wrap("", extra)
    single, listed = marks.get("mechanism", []), marks.get("mechanisms", [])
    if listed:
        chosen = next((m for m in sorted(listed, key=len, reverse=True)
                       if params == m or params.startswith(m + "-")), None)
        shown = ", ".join(listed[:LISTED]) + (
            f" and {len(listed) - LISTED} more" if len(listed) > LISTED else "")
        text = (f"{chosen} in this case; the check runs once per claimed mechanism of "
                f"{len(listed)}: {shown}" if chosen else
                f"once per claimed mechanism of {len(listed)}: {shown}")
        if single:
            text += f"; prerequisites: {', '.join(single)}"
        lines += _wrap("Mechanisms:", text)
    elif single:
        text = f"{single[0]} (under test)"
        if single[1:]:
            text += f"; prerequisites: {', '.join(single[1:])}"
        lines += _wrap("Mechanisms:", text)
    for marker, label in (("function", "Functions:"), ("object_class", "Objects:"),
                          ("attribute", "Attributes:")):
        if marks.get(marker):
            lines += _wrap(label, ", ".join(marks[marker]))
    arguments = inspect.signature(check.function).parameters
    claimed = [f"{a} (the claimed and profile-listed {PARAMETER_FIXTURES[a]})"
               for a in arguments if a in PARAMETER_FIXTURES]
    variants = claimed + marks.get("parametrize", [])
    if variants:
        lines += _wrap("Varies by:", ", ".join(variants))
    lines.append("")
    why = ["the module does not do what the clause above says; the FAIL message names "
           "the call, what must hold and what happened."]
    if re.search(r"\bcryptography\b|hashlib|\bhmac\b", " ".join(paragraphs)):
        why.append("The result is checked with an independent implementation, so a module "
                   "that is wrong the same way in both directions is caught too.")
    if re.search(r"\brefus|CKR_", " ".join(paragraphs)):
        why.append("A refusal with another CKR code than the one named fails as well.")
    lines += _wrap("May fail if:", " ".join(why))
    lines += _wrap("Area note:", f"({check.area}) {AREA_NOTES.get(check.area, '')}")
    about = _paragraphs(check.module_doc)
    if about:
        lines += _wrap("About file:", about[0])
    lines += _wrap("Outcome:", OUTCOME_NOTE)
    return "\n".join(lines)
