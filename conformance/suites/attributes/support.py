"""Helpers of the attribute checks: the module child they share (see conftest.py), the
keys they make in it, and how attribute results read in messages."""

import contextlib
import ctypes
import sys

import pytest

from conformance import keypolicy
from conformance import raw as ck
from conformance.isolation import raw_module
from conformance.names import mechanism
from conformance.returncodes import judge

RW = ck.CKF_SERIAL_SESSION | ck.CKF_RW_SESSION
ULONG_SIZE = ctypes.sizeof(ck.CK_ULONG)
UNAVAILABLE = ck.CK_UNAVAILABLE_INFORMATION
SECRET_KEY_TYPES = {"CKM_AES_KEY_GEN": ck.CKK_AES,
                    "CKM_GENERIC_SECRET_KEY_GEN": ck.CKK_GENERIC_SECRET}
LABEL = b"pkcs11-conformance attributes"


class Child:
    """The module in a child process (``module``), logged in as the user, with this
    test's read/write session (``session``)."""

    def __init__(self, module, session, home):
        self.module, self.session, self._home = module, session, home

    def secret_key(self, mechanism_name, key_bits, **flags):
        """A secret key session object generated with `mechanism_name` (CKM_AES_KEY_GEN or
        CKM_GENERIC_SECRET_KEY_GEN), `key_bits` long, labelled LABEL; `flags` name further
        boolean attributes, e.g. sensitive=True sets CKA_SENSITIVE."""
        template = {ck.CKA_CLASS: ck.CKO_SECRET_KEY,
                    ck.CKA_KEY_TYPE: SECRET_KEY_TYPES[mechanism_name],
                    ck.CKA_TOKEN: keypolicy.on_token(), ck.CKA_LABEL: LABEL,
                    ck.CKA_VALUE_LEN: key_bits // 8}
        template.update(attributes(flags))
        return self.module.generate_key(self.session, int(mechanism(mechanism_name)),
                                        template)

    def rsa_private_key(self, key_bits, **flags):
        """The private half of an RSA key pair (public exponent 65537) generated with
        CKM_RSA_PKCS_KEY_PAIR_GEN and the boolean `flags`, once per child."""
        return self._home.rsa_private_key(key_bits, flags)

    def create(self, template):
        """A session object from `template` (CKA_TOKEN false is added)."""
        return self.module.create_object(self.session, {ck.CKA_TOKEN: False, **template})

    def get(self, obj, request):
        """One C_GetAttributeValue call: `request` is [(CKA_*, buffer size or None)]."""
        return self.module.get_attribute_value_into(self.session, obj, request)

    def read(self, obj, kind):
        """One attribute by the two-call convention, or a FAIL naming the return code."""
        rv, [(_, length, value)] = self.module.get_attribute_values(self.session, obj, [kind])
        if rv != ck.CKR_OK or value is None:
            pytest.fail(f"C_GetAttributeValue({name(kind)}) must succeed here: returned "
                        f"{ck.ckr_name(rv)} with ulValueLen {describe_length(length)}")
        return value


class Children:
    """The current child of a test module on this worker, replaced when it died."""

    def __init__(self, target):
        self.target = target
        self.stack = None
        self.module = self.session = None
        self.rsa_keys = {}

    def current(self):
        if self.module is not None:
            try:
                self.module.get_session_info(self.session)
                return self.module
            except Exception:  # noqa: BLE001 - a dead or broken child is replaced
                self.close()
        self.stack = contextlib.ExitStack()
        self.module = self.stack.enter_context(raw_module(self.target))
        self.session = self.module.open_session(self.module.slot, RW)
        self.module.login_user(self.session)
        return self.module

    def rsa_private_key(self, key_bits, flags):
        key = (key_bits, tuple(sorted(flags.items())))
        if key not in self.rsa_keys:
            public = keypolicy.raw_usages({ck.CKA_TOKEN: keypolicy.on_token(),
                                           ck.CKA_MODULUS_BITS: key_bits,
                                           ck.CKA_PUBLIC_EXPONENT: b"\x01\x00\x01",
                                           ck.CKA_LABEL: LABEL}, "public")
            private = keypolicy.raw_usages({ck.CKA_TOKEN: keypolicy.on_token(),
                                            ck.CKA_LABEL: LABEL, **attributes(flags)},
                                           "private")
            _, self.rsa_keys[key] = self.module.generate_key_pair(
                self.session, int(mechanism("CKM_RSA_PKCS_KEY_PAIR_GEN")), public, private)
        return self.rsa_keys[key]

    def close(self):
        if self.stack is not None:
            with contextlib.suppress(Exception):
                self.stack.close()
        self.stack = self.module = self.session = None
        self.rsa_keys = {}


def attributes(flags):
    """{"sensitive": True} -> {CKA_SENSITIVE: True}."""
    return {getattr(ck, "CKA_" + flag.upper()): value for flag, value in flags.items()}


def name(kind):
    """The spec name of a CKA_* value of conformance.raw."""
    names = [k for k, v in vars(ck).items() if k.startswith("CKA_") and v == kind]
    return names[0] if names else f"attribute 0x{kind:X}"


def describe_length(length):
    if length == ck.CK_UNAVAILABLE_INFORMATION:
        return "CK_UNAVAILABLE_INFORMATION"
    return str(length)


def as_ulong(value):
    """A CK_ULONG attribute value (native byte order) as int."""
    return int.from_bytes(value, sys.byteorder)


def ulong_bytes(value):
    """An int as a CK_ULONG attribute value (native byte order)."""
    return value.to_bytes(ULONG_SIZE, sys.byteorder)


def check_rv(rv, condition, call):
    """C_GetAttributeValue returned the code the spec names for `condition`
    (conformance.returncodes; another code is judged by the table)."""
    judge("C_GetAttributeValue", condition, ck.ckr_name(rv), call)


def check_ok(rv, call):
    assert ck.ckr_name(rv) == "CKR_OK", f"{call} must return CKR_OK: returned {ck.ckr_name(rv)}"


def check_unavailable(results, kinds, call, why):
    """Each attribute in `kinds` came back with ulValueLen CK_UNAVAILABLE_INFORMATION."""
    lengths = {kind: length for kind, length, _ in results}
    for kind in kinds:
        assert lengths[kind] == UNAVAILABLE, (
            f"{call}: ulValueLen of {name(kind)} ({why}) must be CK_UNAVAILABLE_INFORMATION: "
            f"got {lengths[kind]}")


def check_returned(results, expected, call):
    """Each attribute in `expected` ({kind: value}) was still returned: its exact length,
    and its value where a buffer was given."""
    got = {kind: (length, value) for kind, length, value in results}
    for kind, want in expected.items():
        length, value = got[kind]
        assert length == len(want), (
            f"{call}: {name(kind)} must still be returned, {len(want)} bytes: ulValueLen "
            f"{describe_length(length)}")
        assert value is None or value == want, (
            f"{call}: {name(kind)} must still be returned as {want.hex()}: got {value.hex()}")
