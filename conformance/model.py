"""Vendor declarations, profiles and the outcome rule, as frozen dataclasses.

Claims decide what runs; profiles decide what counts (see the README's outcome rule).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .uri import PKCS11URI

Value = int | str | bool
# A mechanism's parameter variants: {"key_sizes": (2048, 3072), "hashes": ("sha256",)}.
Variants = Mapping[str, tuple[Value, ...]]


@dataclass(frozen=True)
class Observation:
    """What a known deviation expects to see when its case fails: the CKR code the module
    returned, or a pattern the failure message matches (re.search)."""

    code: str | None = None
    message: str | None = None

    def matches(self, code: str | None, message: str) -> bool:
        if self.code is not None:
            return code == self.code
        return self.message is not None and re.search(self.message, message) is not None

    def describe(self) -> str:
        return self.code if self.code is not None else f"a message matching /{self.message}/"


@dataclass(frozen=True)
class KnownDeviation:
    # A case id, or several, with * matching any run of characters and ? any one.
    test: str | tuple[str, ...]
    url: str
    reason: str
    observed: Observation = Observation()

    @property
    def patterns(self) -> tuple[str, ...]:
        return (self.test,) if isinstance(self.test, str) else self.test

    def matching(self, case_id: str) -> str | None:
        """The first of the deviation's patterns that matches the case id."""
        return next((p for p in self.patterns if _case_pattern(p).fullmatch(case_id)), None)

    def matches(self, case_id: str) -> bool:
        return self.matching(case_id) is not None


@functools.cache
def _case_pattern(pattern: str) -> re.Pattern[str]:
    # Not fnmatch: case ids contain [ and ], which must match themselves.
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                              for c in pattern))


@dataclass(frozen=True)
class ModuleSpec:
    path: str
    expect_library_version: str | None = None
    init_reserved: str | None = None  # C_Initialize pReserved, for modules that need it


@dataclass(frozen=True)
class TokenSpec:
    label: str
    user_pin_env: str
    so_pin_env: str | None = None
    provision: str | None = None  # None: use the token as it is, never initialize it
    uri: PKCS11URI | None = None  # token.uri: find the token by these attributes, not label

    def name(self) -> str:
        """How messages name the token: its URI when the vendor file gives one."""
        return self.uri.text if self.uri else repr(self.label)


@dataclass(frozen=True)
class KeyPolicy:
    """How the suite has to make keys on this module (vendor file `keys`): for modules that
    cannot make the single-purpose session keys the checks otherwise use."""

    token_objects: bool = False  # keys only as token objects (throwaway tokens only)
    all_usages: bool = False  # key pairs only with sign, verify, encrypt and decrypt together
    # C_Finalize and C_Initialize after this many tests: for a module that keeps every key
    # it made or used loaded until C_Finalize, with room for only so many.
    reinitialize_every: int | None = None


@dataclass(frozen=True)
class Vendor:
    id: str
    title: str
    source: Path
    module: ModuleSpec
    token: TokenSpec
    profiles: tuple[str, ...]
    functions: frozenset[str]
    claims: Mapping[str, Variants]
    known_deviations: tuple[KnownDeviation, ...] = ()
    timeout: float = 300.0  # seconds one test may take before its worker is stopped
    # Optional attribute semantics the module claims to enforce (CKA_WRAP_WITH_TRUSTED...).
    attributes: frozenset[str] = frozenset()
    keys: KeyPolicy = KeyPolicy()

    def deviation_for(self, case_id: str) -> KnownDeviation | None:
        return next((d for d in self.known_deviations if d.matches(case_id)), None)


@dataclass(frozen=True)
class Profile:
    id: str
    title: str
    source: Path
    reference: str
    functions: frozenset[str]
    objects: frozenset[str]
    required: Mapping[str, Variants]
    optional: Mapping[str, Variants]
    areas: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def requires(self, mechanism: str, parameters: Mapping[str, Value]) -> bool:
        """True when this profile requires the mechanism with these parameter values.

        A requirement that lists no values for a parameter requires every claimed value.
        """
        if mechanism not in self.required:
            return False
        variants = self.required[mechanism]
        return all(
            key not in variants or value in variants[key] for key, value in parameters.items()
        )


def claims_variant(claims: Mapping[str, Variants], mechanism: str,
                   parameters: Mapping[str, Value]) -> bool:
    """True when the vendor claims the mechanism with every one of these parameter values."""
    if mechanism not in claims:
        return False
    variants = claims[mechanism]
    return all(value in variants.get(key, ()) for key, value in parameters.items())


def parameter_values(vendor: Vendor, profiles: tuple[Profile, ...], mechanism: str,
                     key: str) -> list[Value]:
    """The union of claimed and profile-listed values, sorted: a required value that is
    not claimed becomes a failing case instead of disappearing."""
    values: set[Value] = set(vendor.claims.get(mechanism, {}).get(key, ()))
    for profile in profiles:
        for table in (profile.required, profile.optional):
            values.update(table.get(mechanism, {}).get(key, ()))
    return sorted(values, key=lambda v: (str(type(v)), v))


# missing: a profile requires it and the vendor does not claim it (status MISSING, not run).
Action = Literal["run", "skip", "missing"]


@dataclass(frozen=True)
class Decision:
    """What the outcome rule decided for one test case."""

    action: Action
    required_by: tuple[str, ...]
    reason: str = ""
    deviation: KnownDeviation | None = None

    @property
    def requirement(self) -> str:
        return "required" if self.required_by else "optional"

    @property
    def expected_status(self) -> str:
        if self.action == "skip":
            return "SKIP"
        if self.action == "missing":
            return "MISSING"
        return "FAIL" if self.deviation else "PASS"


def _describe(mechanism: str, parameters: Mapping[str, Value]) -> str:
    if not parameters:
        return mechanism
    inner = ", ".join(f"{k}={v}" for k, v in sorted(parameters.items()))
    return f"{mechanism} ({inner})"


def decide(vendor: Vendor, profiles: tuple[Profile, ...], case_id: str,
           mechanisms: tuple[str, ...], functions: tuple[str, ...],
           parameters: Mapping[str, Value], objects: tuple[str, ...] = (),
           attributes: tuple[str, ...] = ()) -> Decision:
    """The outcome rule of DESIGN.md for one case.

    `parameters` apply to the first mechanism, the one under test (the first argument of
    the `mechanism` marker nearest the test function); further mechanisms are
    prerequisites (key generation for a signing test, say). Object classes are not
    claimed: every module must handle them, and profiles that list them require them.
    """
    required_by: set[str] = set()
    missing_required: list[str] = []  # unclaimed, and some profile requires it: MISSING
    missing_optional: list[str] = []  # unclaimed, and no profile requires it: SKIP
    for mechanism in mechanisms[:1]:
        requiring = {p.id for p in profiles if p.requires(mechanism, parameters)}
        required_by |= requiring
        if not claims_variant(vendor.claims, mechanism, parameters):
            missing = missing_required if requiring else missing_optional
            missing.append(_describe(mechanism, parameters))
    for function in functions:
        requiring = {p.id for p in profiles if function in p.functions}
        required_by |= requiring
        if function not in vendor.functions:
            (missing_required if requiring else missing_optional).append(function)
    for object_class in objects:
        required_by.update(p.id for p in profiles if object_class in p.objects)
    for attribute in attributes:  # no profile requires one yet: claimed or skipped
        if attribute not in vendor.attributes:
            missing_optional.append(attribute)
    # A prerequisite (the key generation a signing test needs) must be claimed for the
    # case to run, but does not make the case count for the profiles requiring it.
    for mechanism in mechanisms[1:]:
        if mechanism not in vendor.claims:
            (missing_required if required_by else missing_optional).append(
                f"{mechanism} (prerequisite)")
    required = tuple(sorted(required_by))
    deviation = vendor.deviation_for(case_id)
    if missing_required:  # nothing runs, so no known deviation can apply
        return Decision("missing", required,
                        f"{', '.join(missing_required)} required by profile "
                        f"{', '.join(required)}, not claimed by vendor {vendor.id}")
    if missing_optional:  # a case that cannot run counts for no profile
        return Decision("skip", (),
                        f"{', '.join(missing_optional)} not claimed by vendor {vendor.id}")
    return Decision("run", required, deviation=deviation)
