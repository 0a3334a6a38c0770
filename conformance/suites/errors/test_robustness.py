"""Robustness: calls that break the caller's side of the contract (a NULL pointer with a
non-zero length, a length near 2^64). The module must not crash or hang, and answers
with the code the spec names for the condition it can see without reading past the
caller's buffer: CKR_ARGUMENTS_BAD for a NULL pointer, the length-range code for a
length no mechanism here accepts.

Severity `robustness`: these cases are reported in their own section and never decide a
profile. They run in the `raw` child process, so a crash or a hang is reported as CRASH
or TIMEOUT naming the call, and the run goes on.
"""

import pytest

from conformance import raw as ck
from conformance.suites.errors.common import (
    OUT,
    SERIAL,
    call_raw,
    operation_marks,
    refusal,
    restart,
    run,
    start,
    valid_inputs,
)

SEVERITY = "robustness"
pytestmark = pytest.mark.severity(SEVERITY)

HUGE = 2 ** 64 - 1  # the largest CK_ULONG on LP64; not a whole number of any block


def answer(raw, function, started, inputs, size=OUT):
    """The call, raising CKRError for anything but CKR_OK (for refusal)."""
    rv, _, _ = call_raw(raw, function, started, inputs, size)
    if rv != ck.CKR_OK:
        raise ck.CKRError(function, rv)


def null_first(function, started):
    """The function's valid inputs with the first (the data, or the signature of
    C_VerifyFinal) as a NULL pointer of the same length."""
    inputs = valid_inputs(function, started)
    return [(None, len(inputs[0])), *inputs[1:]]


NULL_INPUT = sorted(["C_Decrypt", "C_DecryptUpdate", "C_Digest", "C_DigestUpdate", "C_Encrypt",
                     "C_EncryptUpdate", "C_Sign", "C_SignUpdate", "C_Verify", "C_VerifyFinal",
                     "C_VerifyUpdate"])


@pytest.mark.parametrize("function", [pytest.param(f, marks=operation_marks(f))
                                      for f in NULL_INPUT])
def test_null_input_with_length_is_refused(raw, target, function):
    """PKCS#11 v2.40 base §5.1.6 CKR_ARGUMENTS_BAD: an input given as a NULL pointer with a
    non-zero length is an argument that is "in some way not appropriate"; the module
    returns CKR_ARGUMENTS_BAD instead of reading through the NULL pointer."""
    started = start(raw, target, function)
    if function == "C_VerifyFinal":
        run(raw, "C_VerifyUpdate", started, valid_inputs("C_VerifyUpdate", started))
    inputs = null_first(function, started)
    refusal("arguments-bad", function, answer, raw, function, started, inputs,
            what=f"{function} with a NULL input of length {inputs[0][1]}",
            severity=SEVERITY)


NULL_LENGTH = sorted(["C_Decrypt", "C_DecryptFinal", "C_Digest", "C_DigestFinal", "C_Encrypt",
                      "C_EncryptFinal", "C_Sign", "C_SignFinal"])


@pytest.mark.parametrize("function", [pytest.param(f, marks=operation_marks(f))
                                      for f in NULL_LENGTH])
def test_null_output_length_pointer_is_refused(raw, target, function):
    """PKCS#11 v2.40 base §5.1.6 CKR_ARGUMENTS_BAD, §5.2: the pointer to the output's
    length may not be NULL (the convention reads and writes it); a NULL one gives
    CKR_ARGUMENTS_BAD instead of a write through it."""
    started = start(raw, target, function)
    if function.endswith("Final"):
        update = function.replace("Final", "Update")
        run(raw, update, started, valid_inputs(update, started))

    def once():
        rv = raw.call_without_length(function, started.session,
                                     valid_inputs(function, started), OUT)
        if rv != ck.CKR_OK:
            raise ck.CKRError(function, rv)
    refusal("arguments-bad", function, once,
            what=f"{function} with a NULL pointer for the output's length",
            severity=SEVERITY)


# Calls outside an operation, as (function, arguments after the session handle).
NULL_CALLS = {
    "C_FindObjectsInit": (None, 1),  # a NULL template with one attribute
    "C_GenerateRandom": (None, 16),
    "C_SeedRandom": (None, 16),
}


@pytest.mark.parametrize("function", [pytest.param(f, marks=pytest.mark.function(f))
                                      for f in sorted(NULL_CALLS)])
def test_null_pointer_with_length_is_refused(raw, function):
    """PKCS#11 v2.40 base §5.1.6 CKR_ARGUMENTS_BAD: a NULL pointer with a non-zero length
    (a template of one attribute, 16 bytes of random data or seed) gives
    CKR_ARGUMENTS_BAD."""
    session = raw.open_session(raw.slot, SERIAL)

    def once():
        rv = raw.call(function, session, *NULL_CALLS[function])
        if rv != ck.CKR_OK:
            raise ck.CKRError(function, rv)
    refusal("arguments-bad", function, once,
            what=f"{function} with a NULL pointer and length {NULL_CALLS[function][1]}",
            severity=SEVERITY)


# (function, condition): a length of 2^64 - 1, which the mechanism refuses from the length
# alone (CKM_AES_ECB takes whole blocks, CKM_RSA_PKCS at most the modulus length).
HUGE_LENGTHS = [("C_Decrypt", "encrypted-data-len-range"), ("C_Encrypt", "data-len-range"),
                ("C_Sign", "data-len-range"), ("C_Verify", "signature-len-range")]


@pytest.mark.parametrize(("function", "condition"), [
    pytest.param(f, c, id=f, marks=operation_marks(f)) for f, c in HUGE_LENGTHS])
def test_huge_input_length_is_refused(raw, target, function, condition):
    """PKCS#11 v2.40 base §5.1.6 CKR_DATA_LEN_RANGE, CKR_ENCRYPTED_DATA_LEN_RANGE,
    CKR_SIGNATURE_LEN_RANGE; CKM_AES_ECB (input a multiple of the block size) and
    CKM_RSA_PKCS (at most k bytes): an input length of 2^64 - 1 is out of range for the
    mechanism, which the module can tell from the length alone; it answers with the
    length-range code instead of reading (or allocating) that much."""
    started = start(raw, target, function)
    inputs = valid_inputs(function, started)
    inputs[-1] = (inputs[-1], HUGE)  # the data, or C_Verify's signature
    refusal(condition, function, answer, raw, function, started, inputs,
            what=f"{function} with an input length of 2^64 - 1",
            severity=SEVERITY)


@pytest.mark.parametrize("function", [pytest.param(f, marks=operation_marks(f))
                                      for f in ["C_Decrypt", "C_Digest", "C_Encrypt",
                                                "C_Sign"]])
def test_huge_output_length_is_honoured(raw, target, function):
    """PKCS#11 v2.40 base §5.2: an output buffer whose length says 2^64 - 1 bytes is large
    enough, so the call returns CKR_OK, the output and its exact length (a module that
    narrows the length to 32 bits, or fills the whole buffer, fails here)."""
    started = start(raw, target, function)
    inputs = valid_inputs(function, started)
    expected = run(raw, function, started, inputs)
    restart(raw, function, started)
    rv, length, got = call_raw(raw, function, started, inputs, (OUT, HUGE))
    assert ck.ckr_name(rv) == "CKR_OK", (
        f"{function} with an output length of 2^64 - 1 must return CKR_OK (§5.2: the "
        f"buffer is large enough): returned {ck.ckr_name(rv)}")
    assert (length, got) == (len(expected), expected), (
        f"{function} with an output length of 2^64 - 1 must return the output and its "
        f"exact length {len(expected)}: got {length} bytes {got.hex()}")
