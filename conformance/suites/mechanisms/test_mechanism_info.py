"""Module honesty: what C_GetMechanismList and C_GetMechanismInfo report agrees with the
vendor's claims and with the specification's description of each mechanism.

Which cases exist. The checks run once per mechanism of KINDS (in
conformance/mechanism_kinds.py, shared with `pkcs11-conformance probe`), a table of the
mechanisms this area can judge: what each one is for (key generation, digest, signature,
cipher, key wrapping, derivation) and, in KEY_SIZE_UNITS and CURVE_MECHANISMS, how the
spec measures its key sizes. The outcome rule then runs the claimed ones, fails the
required but unclaimed ones and skips the rest. Parametrizing over every name the
binding knows would add about 270 skipped cases per check; reading the claims at
collection time would need a pytest hook in this module. A claimed mechanism outside
KINDS is still checked for presence in C_GetMechanismList, by
test_mechanism_list_includes_other_claimed_mechanisms; its flags and key sizes are not
checked, because there is no table entry saying what they should be.

The per-mechanism checks carry no `function` marker: the function-level tests at the end
carry the C_GetMechanismList and C_GetMechanismInfo markers, so a profile that requires
those functions is judged by them rather than by every mechanism's case.

C_GetMechanismList and C_GetMechanismInfo are read once per worker from one child
process (the raw layer), not once per case: there are a few hundred cases and each
child process costs a module load.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from conformance import raw as ck
from conformance.isolation import raw_module
from conformance.mechanism_kinds import (
    BITS,
    CURVE_BITS,
    CURVE_MECHANISMS,
    FUNCTION_MASK,
    KEY_SIZE_UNITS,
    KINDS,
    SIZED,
    flag_names,
)
from conformance.names import mechanism
from conformance.suite import expect_code, succeeds


class Advertised:
    """The token's mechanism list and mechanism information, read once and kept."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self._list: list[int] | None = None
        self._info: dict[str, ck.MechanismInfo] = {}

    def mechanisms(self) -> list[int]:
        if self._list is None:
            self._list = succeeds("C_GetMechanismList", self.raw.get_mechanism_list,
                                  self.raw.slot)
        return self._list

    def info(self, name: str) -> ck.MechanismInfo:
        """Read into a zeroed structure: these checks judge the values the module sets;
        whether it sets every field is test_advertised.py's
        test_mechanism_info_sets_every_field, so a module that does not is reported
        once, there."""
        if name not in self._info:
            try:
                self._info[name] = self.raw.get_mechanism_info(
                    self.raw.slot, int(mechanism(name)))
            except ck.CKRError as exc:
                pytest.fail(f"C_GetMechanismInfo({name}) must return CKR_OK for a claimed "
                            f"mechanism: returned {exc.name}")
        return self._info[name]


@pytest.fixture(scope="module")
def advertised(target) -> Iterator[Advertised]:
    with raw_module(target) as raw:
        yield Advertised(raw)


@pytest.mark.mechanisms(*sorted(KINDS))
def test_mechanism_list_includes_claimed_mechanism(advertised, mechanism_name):
    """PKCS#11 v2.40 base §5.5.5 C_GetMechanismList: the list holds the mechanisms the
    token supports, so it holds every mechanism the vendor claims."""
    value = int(mechanism(mechanism_name))
    listed = advertised.mechanisms()
    assert value in listed, (
        f"C_GetMechanismList must list {mechanism_name} ({value:#x}), which the vendor "
        f"claims: it lists {len(listed)} mechanisms without it")


@pytest.mark.function("C_GetMechanismList")
def test_mechanism_list_includes_other_claimed_mechanisms(advertised, target):
    """PKCS#11 v2.40 base §5.5.5 C_GetMechanismList: the list holds every claimed
    mechanism that the per-mechanism checks of this area do not cover."""
    listed = advertised.mechanisms()
    missing = [name for name in sorted(set(target.vendor.claims) - set(KINDS))
               if int(mechanism(name)) not in listed]
    assert not missing, (
        f"C_GetMechanismList must list every claimed mechanism: {', '.join(missing)} "
        f"missing from its {len(listed)} mechanisms")


@pytest.mark.mechanisms(*sorted(KINDS))
def test_mechanism_info_flags_include_claimed_functions(advertised, mechanism_name):
    """PKCS#11 v2.40 base §5.5.6 C_GetMechanismInfo, §3.5 CK_MECHANISM_INFO: the flags
    say which functions a mechanism can be used with, so a claimed mechanism has those of
    its kind (key generation CKF_GENERATE or CKF_GENERATE_KEY_PAIR, digest CKF_DIGEST,
    signature CKF_SIGN|CKF_VERIFY, cipher CKF_ENCRYPT|CKF_DECRYPT, key wrapping
    CKF_WRAP|CKF_UNWRAP, derivation CKF_DERIVE)."""
    kind = KINDS[mechanism_name]
    flags = advertised.info(mechanism_name).flags
    expected = " or ".join(flag_names(need) for need in kind.needs)
    assert any(flags & need == need for need in kind.needs), (
        f"C_GetMechanismInfo({mechanism_name}) flags must include {expected} for a "
        f"{kind.what} mechanism: flags {flags:#x} ({flag_names(flags)})")


@pytest.mark.mechanisms(*sorted(KINDS))
def test_mechanism_info_flags_fit_mechanism_kind(advertised, mechanism_name):
    """PKCS#11 v2.40 base §3.5 CK_MECHANISM_INFO, curr mechanisms-vs-functions tables:
    no flag claims a function the mechanism cannot serve (a digest with CKF_SIGN, a
    signature mechanism with CKF_ENCRYPT, a key pair generator with CKF_GENERATE)."""
    kind = KINDS[mechanism_name]
    flags = advertised.info(mechanism_name).flags
    extra = flags & FUNCTION_MASK & ~kind.allows
    assert not extra, (
        f"C_GetMechanismInfo({mechanism_name}) flags must not include {flag_names(extra)} "
        f"for a {kind.what} mechanism: flags {flags:#x} ({flag_names(flags)})")


@pytest.mark.mechanisms(*SIZED)
def test_mechanism_info_key_size_range_is_not_empty(advertised, mechanism_name):
    """PKCS#11 v2.40 base §3.5 CK_MECHANISM_INFO, curr key size statements: for RSA,
    DSA, Diffie-Hellman, elliptic curve, AES and generic secret key mechanisms
    [ulMinKeySize, ulMaxKeySize] is the range of supported key sizes, so it is neither
    inverted nor empty."""
    info = advertised.info(mechanism_name)
    assert info.max_key_size > 0 and info.min_key_size <= info.max_key_size, (
        f"C_GetMechanismInfo({mechanism_name}) key size range must hold a size: "
        f"ulMinKeySize {info.min_key_size}, ulMaxKeySize {info.max_key_size}")


@pytest.mark.mechanisms(*sorted(KEY_SIZE_UNITS))
def test_mechanism_info_key_size_range_covers_claimed_key_size(advertised, mechanism_name,
                                                                key_bits):
    """PKCS#11 v2.40 curr, RSA, DSA, DH, AES and generic secret mechanisms: the range
    [ulMinKeySize, ulMaxKeySize] covers every claimed key size, counted in bits for RSA
    moduli, DSA and DH primes and generic secret keys and in bytes for AES keys."""
    unit = KEY_SIZE_UNITS[mechanism_name]
    size = key_bits if unit == BITS else math.ceil(key_bits / 8)
    info = advertised.info(mechanism_name)
    assert info.min_key_size <= size <= info.max_key_size, (
        f"C_GetMechanismInfo({mechanism_name}) key size range must cover the claimed "
        f"{key_bits}-bit keys ({size} {unit}): range {info.min_key_size}.."
        f"{info.max_key_size} {unit}")


@pytest.mark.mechanisms(*CURVE_MECHANISMS)
def test_mechanism_info_key_size_range_covers_claimed_curve(advertised, mechanism_name,
                                                            curve):
    """PKCS#11 v2.40 curr, elliptic curve mechanisms (Edwards curves v3.0 curr): the
    range [ulMinKeySize, ulMaxKeySize] counts field sizes in bits, so it covers the field
    size of every claimed curve (for Edwards and Montgomery curves the key size, 256 or
    456 bits, is accepted too)."""
    sizes = CURVE_BITS[curve]
    info = advertised.info(mechanism_name)
    assert any(info.min_key_size <= size <= info.max_key_size for size in sizes), (
        f"C_GetMechanismInfo({mechanism_name}) key size range must cover {curve} "
        f"({' or '.join(map(str, sizes))} bits): range {info.min_key_size}.."
        f"{info.max_key_size} bits")


# Values no PKCS#11 version defines and below CKM_VENDOR_DEFINED: no module supports them.
UNDEFINED_MECHANISMS = (0x7FFFFFF0, 0x7FFFFFF1, 0x7FFFFFF2)


@pytest.mark.function("C_GetMechanismInfo")
def test_mechanism_info_answers_for_every_listed_mechanism(advertised):
    """PKCS#11 v2.40 base §5.5.6 C_GetMechanismInfo, §5.5.5 C_GetMechanismList: the
    token reports information on every mechanism it lists."""
    failures = []
    for value in advertised.mechanisms():
        try:
            advertised.raw.get_mechanism_info(advertised.raw.slot, value)
        except ck.CKRError as exc:
            failures.append(f"{value:#x}: {exc.name}")
    assert not failures, (
        f"C_GetMechanismInfo must return CKR_OK for every mechanism C_GetMechanismList "
        f"lists: {', '.join(failures)}")


@pytest.mark.function("C_GetMechanismInfo")
def test_mechanism_info_refuses_unknown_mechanism(advertised):
    """PKCS#11 v2.40 base §5.5.6 C_GetMechanismInfo, §5.1.6 (CKR_MECHANISM_INVALID): a
    mechanism type the token does not support is refused with CKR_MECHANISM_INVALID."""
    value = next(v for v in UNDEFINED_MECHANISMS if v not in advertised.mechanisms())
    expect_code("mechanism-invalid", "C_GetMechanismInfo",
                advertised.raw.get_mechanism_info, advertised.raw.slot, value,
                what=f"C_GetMechanismInfo({value:#x})")
