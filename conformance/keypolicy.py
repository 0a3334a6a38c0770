"""How this process makes keys: the vendor file's `keys` policy, applied where the suites
generate keys.

Most modules make any key as a session object with exactly the usages asked for, and the
checks rely on that. A module that cannot (tpm2-pkcs11 makes keys only on the token, and
key pairs only with sign, verify, encrypt and decrypt together) declares it, and the
suites then ask for what it can make. Checks that need a key it cannot make at all (a
private key that may not sign) are skipped, with the vendor's declaration as the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from pkcs11 import Attribute, MechanismFlag

from .model import KeyPolicy

ALL_USAGES = (MechanismFlag.SIGN | MechanismFlag.VERIFY | MechanismFlag.ENCRYPT
              | MechanismFlag.DECRYPT)
# The usage attributes of each half of a pair under keys.all_usages.
_PAIR_USAGES = {"public": (Attribute.VERIFY, Attribute.ENCRYPT),
                "private": (Attribute.SIGN, Attribute.DECRYPT)}

_policy = KeyPolicy()


def use(policy: KeyPolicy) -> None:
    """Set the policy of this process (the plugin does, from the vendor file)."""
    global _policy
    _policy = policy


@contextmanager
def applied(policy: KeyPolicy) -> Iterator[None]:
    """The policy of one module while keys are made on it, in a process that drives
    several modules (interop runs)."""
    global _policy
    before, _policy = _policy, policy
    try:
        yield
    finally:
        _policy = before


def on_token() -> bool:
    """CKA_TOKEN (python-pkcs11's `store`) for a key the suite makes."""
    return _policy.token_objects


def usages(flags: MechanismFlag) -> MechanismFlag:
    """The capabilities to ask for when `flags` are the ones a check needs."""
    return flags | ALL_USAGES if _policy.all_usages else flags


def usage_values(template: dict[Attribute, Any]) -> dict[Attribute, Any]:
    """A python-pkcs11 template whose sign, verify, encrypt and decrypt values are all true
    under keys.all_usages (a check of the result then expects them true)."""
    if not _policy.all_usages:
        return template
    return {**template, **{usage: True for usage in (Attribute.SIGN, Attribute.VERIFY,
                                                      Attribute.ENCRYPT, Attribute.DECRYPT)
                           if usage in template}}


def raw_usages(template: dict[int, Any], half: str) -> dict[int, Any]:
    """A ctypes-layer template for the `half` ("public" or "private") of a key pair, with
    its usages all true under keys.all_usages; a usage the template sets false is kept, so
    a module that cannot make such a key refuses it."""
    if not _policy.all_usages:
        return template
    return {**{int(usage): True for usage in _PAIR_USAGES[half]}, **template}


def needs_restricted_usages(what: str) -> None:
    """Skip a check that needs a key without some usage, on a module that cannot make one."""
    if _policy.all_usages:
        pytest.skip(f"{what} cannot be made: the vendor declares keys.all_usages (key pairs "
                    "only with sign, verify, encrypt and decrypt together)")
