"""The return values PKCS#11 permits, as data: one table for every negative check.

Two tables, both read from the specification's text:

- RETURN_VALUES: for each function, the return values its "Return values:" paragraph
  lists (PKCS#11 v2.40 base specification §5, and the 3.x functions of v3.0 and later),
  plus the universal ones any function may return (v2.40 §5.1: CKR_GENERAL_ERROR,
  CKR_HOST_MEMORY, CKR_FUNCTION_FAILED; CKR_OK is always listed).
- CONDITIONS: for each error condition a check provokes, the code (or the set of codes)
  the specification names for it, and the clause that names it.

judge() turns one observed return value into a verdict: the named code passes; another
code that the function may return is a `should` finding (the module answered with a
permitted but less precise code); a code outside the function's list, or CKR_OK where
the condition demands an error, is a `must` failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["must", "should", "strict", "robustness"]
# must: the spec says shall/must/always, or names the one code; should: SHOULD, or a
# permitted code other than the named one; strict: a caller obligation a lenient module
# accepts; robustness: caller-contract violations (a crash is a finding, not a
# conformance failure). Profile verdicts count `must` failures only.
SEVERITIES: tuple[Severity, ...] = ("must", "should", "strict", "robustness")

# v2.40 §5.1 (and each later version's "Return values" section): any function may return
# these.
UNIVERSAL = frozenset({"CKR_OK", "CKR_GENERAL_ERROR", "CKR_HOST_MEMORY",
                       "CKR_FUNCTION_FAILED"})


def _codes(*names: str) -> frozenset[str]:
    return UNIVERSAL | frozenset(names)


# Function name -> every return value its "Return values:" paragraph lists (with the
# universal ones). Filled from the v2.40 base specification §5.4-§5.15 and v3.0 §5.
RETURN_VALUES: dict[str, frozenset[str]] = {
    # --- filled from the spec text (see the module docstring) ---
}


@dataclass(frozen=True)
class Condition:
    """An error condition a check provokes, the code(s) the spec names for it, and where."""

    codes: tuple[str, ...]  # any of these is the right answer
    clause: str  # e.g. "PKCS#11 v2.40 §5.2 (CKR_KEY_TYPE_INCONSISTENT)"


# Condition id -> what the spec names. Ids are kebab-case and say the condition, not the
# code. Add an entry by inserting it in its section; never reuse an id for another meaning.
CONDITIONS: dict[str, Condition] = {
    # --- filled from the spec text (see the module docstring) ---
}


def permitted(function: str) -> frozenset[str]:
    """The return values `function` may give; every function may give the universal ones."""
    return RETURN_VALUES.get(function, UNIVERSAL)


def severity_of(function: str, condition: str, returned: str) -> Severity | None:
    """None when `returned` is what the spec names for `condition`; else the severity of
    the finding (see the module docstring)."""
    if returned in CONDITIONS[condition].codes:
        return None
    if returned != "CKR_OK" and returned in permitted(function):
        return "should"
    return "must"


class WrongReturnCode(AssertionError):
    """A check's function returned something other than the code the spec names.

    Carries what a report and a known deviation need as fields, not as text: the
    function, the condition, the codes named, the code returned and the severity."""

    def __init__(self, function: str, condition: str, returned: str, severity: Severity,
                 what: str = "") -> None:
        named = CONDITIONS[condition]
        self.function, self.condition, self.returned = function, condition, returned
        self.expected, self.clause, self.severity = named.codes, named.clause, severity
        subject = what or function
        super().__init__(f"{subject} must return {' or '.join(named.codes)} "
                         f"({named.clause}): returned {returned}")


def judge(function: str, condition: str, returned: str, what: str = "") -> None:
    """Raise WrongReturnCode unless `returned` is the code the spec names for `condition`.

    `what` describes the call for the message, e.g. "C_SignInit(CKM_ECDSA) with an AES key";
    it defaults to the function name."""
    severity = severity_of(function, condition, returned)
    if severity is not None:
        raise WrongReturnCode(function, condition, returned, severity, what)
