"""Helpers shared by the signature and MAC tests: the message and its chunks, python-pkcs11
calls that fail the test with the CKR the module returned, the altered inputs no signature
check may accept, and C_SignInit alone for the keys that must not sign."""

import pytest
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.exceptions import PKCS11Error

from conformance.names import mechanism
from conformance.returncodes import SEVERITIES, judge, severity_of
from conformance.suite import returned

# 3000 bytes that are not a repetition of any block size; the multi-part calls get it in
# uneven chunks.
MESSAGE = bytes(i * 7 % 251 for i in range(3000))
CHUNK = 700  # not a multiple of any hash or cipher block size


def in_chunks(data):
    """`data` as an iterator of uneven chunks: python-pkcs11 then calls
    C_SignUpdate/C_VerifyUpdate per chunk and C_SignFinal/C_VerifyFinal."""
    return iter([data[i:i + CHUNK] for i in range(0, len(data), CHUNK)])


def message(parts):
    """The message whole ("single-part"), or in uneven chunks ("multi-part")."""
    if parts == "single-part":
        return MESSAGE
    return in_chunks(MESSAGE)


def calls(operation, parts):
    """The calls a case makes: C_<operation>Update + C_<operation>Final for "multi-part",
    C_<operation> for any other case (single-part, or an input given whole)."""
    if parts == "multi-part":
        return f"C_{operation}Update + C_{operation}Final"
    return f"C_{operation}"


def sign(key, data, name, param=None, what="C_Sign"):
    try:
        return key.sign(data, mechanism=mechanism(name), mechanism_param=param)
    except PKCS11Error as exc:
        pytest.fail(f"{what}({name}) must succeed: returned {returned(exc)}")


def module_verifies(key, data, signature, name, param=None, what="C_Verify"):
    """True or False from the module; any other outcome fails the test."""
    try:
        return key.verify(data, signature, mechanism=mechanism(name), mechanism_param=param)
    except PKCS11Error as exc:
        pytest.fail(f"{what}({name}) must return CKR_OK, CKR_SIGNATURE_INVALID or "
                    f"CKR_SIGNATURE_LEN_RANGE: returned {returned(exc)}")


def alterations(data, signature, noun="signature"):
    """(what, data, signature, condition) for each alteration none of which may verify:
    a wrong signature of the right length is CKR_SIGNATURE_INVALID, one of a wrong length
    CKR_SIGNATURE_LEN_RANGE (base §5.12.2)."""
    flipped = bytearray(signature)
    flipped[len(flipped) // 2] ^= 0x01
    changed = bytearray(data)
    changed[len(changed) // 2] ^= 0x01
    return [(f"a {noun} with one bit flipped", data, bytes(flipped), "signature-invalid"),
            ("a message with one bit flipped", bytes(changed), signature, "signature-invalid"),
            (f"a {noun} one byte longer", data, signature + b"\x00", "signature-len-range"),
            (f"a {noun} one byte shorter", data, signature[:-1], "signature-len-range")]


def verify_outcome(key, data, signature, name, param=None):
    """The CKR name C_Verify returns for a whole message: python-pkcs11's verify() folds
    CKR_SIGNATURE_INVALID and CKR_SIGNATURE_LEN_RANGE into False, its _verify does not."""
    try:
        key._verify(data, signature, mechanism=mechanism(name), mechanism_param=param)
    except PKCS11Error as exc:
        return returned(exc)
    return "CKR_OK"


def assert_all_rejected(key, data, signature, name, param=None,
                        source="the module's own signature", noun="signature"):
    """C_Verify accepts `signature` (from `source`) and rejects each of its alterations
    with the code the spec names; of several wrong answers the gravest is judged."""
    assert module_verifies(key, data, signature, name, param), (
        f"C_Verify({name}) must accept {source}: CKR_SIGNATURE_INVALID")
    wrong = []
    for what, altered_data, altered_signature, condition in alterations(data, signature,
                                                                        noun):
        got = verify_outcome(key, altered_data, altered_signature, name, param)
        severity = severity_of("C_Verify", condition, got)
        if severity is not None:
            wrong.append((SEVERITIES.index(severity), what, condition, got))
    if wrong:
        _, what, condition, got = min(wrong)
        judge("C_Verify", condition, got, f"C_Verify({name}) of {what}")


# --- C_SignInit alone, for keys that must not sign ------------------------------------------


class _Initialised(Exception):
    """C_SignInit returned CKR_OK."""


def _stop_after_init():
    raise _Initialised
    yield b""  # a generator: python-pkcs11 asks for the first chunk after C_SignInit


def sign_init(key, name, param=None):
    """C_SignInit alone; returns None for CKR_OK or the python-pkcs11 exception.

    python-pkcs11 has no C_SignInit of its own, but it signs an iterator with C_SignInit
    first and asks for the first chunk afterwards: this iterator stops the call there, so a
    module that wrongly accepts the key gets no data to sign (python-pkcs11 then ends the
    operation with C_SignFinal)."""
    try:
        key.sign(_stop_after_init(), mechanism=mechanism(name), mechanism_param=param)
    except _Initialised:
        return None
    except PKCS11Error as exc:
        return exc
    return None


def outcome(error):
    """The CKR name of sign_init's result."""
    return "CKR_OK" if error is None else returned(error)


def signing_view(key):
    """The same object handle with python-pkcs11's sign method.

    python-pkcs11 gives a key whose CKA_SIGN is false no sign method, so a module's refusal
    could never be observed; this view lets C_SignInit reach the module."""
    from pkcs11._pkcs11 import SignMixin

    return type("SigningView", (SignMixin, type(key)), {})(key.wrapper)


def assert_aes_key_refused(session, name, param=None):
    """C_SignInit(`name`) with an AES key (CKA_SIGN true) must return
    CKR_KEY_TYPE_INCONSISTENT."""
    key = session.create_object({
        Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
        Attribute.VALUE: bytes(range(32)), Attribute.TOKEN: False, Attribute.SIGN: True})
    try:
        error = sign_init(key, name, param)
    finally:
        key.destroy()
    judge("C_SignInit", "key-type-inconsistent", outcome(error),
          f"C_SignInit({name}) with an AES key")


def assert_sign_not_permitted(key, name, made, *others):
    """`key`, `made` ("generated", "created") with CKA_SIGN false, reads CKA_SIGN false and
    C_SignInit(`name`) with it returns CKR_KEY_FUNCTION_NOT_PERMITTED; `key` and `others`
    are destroyed in any case."""
    try:
        assert key[Attribute.SIGN] is False, (
            f"CKA_SIGN of a key {made} with CKA_SIGN false must read false: got "
            f"{key[Attribute.SIGN]!r}")
        error = sign_init(signing_view(key), name)
    finally:
        for made_object in (key, *others):
            made_object.destroy()
    judge("C_SignInit", "key-function-not-permitted", outcome(error),
          f"C_SignInit({name}) with a key whose CKA_SIGN is false")
