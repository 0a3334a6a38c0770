"""The output-buffer convention (PKCS#11 v2.40 base §5.2): a NULL buffer asks for the
length, a too-small buffer gives CKR_BUFFER_TOO_SMALL with the exact length needed, and
neither ends the operation, so the next call with a large enough buffer returns the
result an uninterrupted operation returns.

The expected result comes from the same operation run once beforehand with a large buffer
(every mechanism here is deterministic: CKM_AES_ECB, CKM_SHA256, CKM_RSA_PKCS signatures,
CKM_AES_KEY_WRAP).
"""

import pytest

from conformance import raw as ck
from conformance.suite import expect_code
from conformance.suites.errors.common import (
    AES_KEY_WRAP,
    OUT,
    aes_key,
    any_aes_key,
    call_raw,
    logged_in,
    operation_marks,
    restart,
    run,
    start,
    valid_inputs,
)

FUNCTIONS = ["C_Decrypt", "C_Digest", "C_Encrypt", "C_Sign", "C_WrapKey"]
WRAP_MARKS = [pytest.mark.function("C_WrapKey"), pytest.mark.function("C_GenerateKey"),
              pytest.mark.mechanism("CKM_AES_KEY_WRAP", "CKM_AES_KEY_GEN")]


def marks(function):
    return WRAP_MARKS if function == "C_WrapKey" else operation_marks(function)


def output_call(raw, target, function):
    """A call of `function` with an output buffer of a given size (None: NULL), as
    (CK_RV, length after the call, output), and the output an uninterrupted call gives;
    the operation (if any) is initialized and waits for that call."""
    if function == "C_WrapKey":
        session = logged_in(raw)
        wrapping = aes_key(raw, target, session, WRAP=True)
        key = any_aes_key(raw, target, session)

        def wrap(size):
            return raw.wrap_key_into(session, AES_KEY_WRAP, wrapping, key, size)
        rv, _, expected = wrap(OUT)
        assert rv == ck.CKR_OK, (
            f"C_WrapKey(CKM_AES_KEY_WRAP) must return CKR_OK: returned {ck.ckr_name(rv)}")
        return wrap, expected
    started = start(raw, target, function)
    inputs = valid_inputs(function, started)
    expected = run(raw, function, started, inputs)
    restart(raw, function, started)
    return (lambda size: call_raw(raw, function, started, inputs, size)), expected


@pytest.mark.parametrize("function", [pytest.param(f, marks=marks(f)) for f in FUNCTIONS])
def test_length_query_leaves_operation_active(raw, target, function):
    """PKCS#11 v2.40 base §5.2, and C_Encrypt §5.8.2, C_Decrypt §5.9.2, C_Digest §5.10.2,
    C_Sign §5.11.2, C_WrapKey §5.13.1: with a NULL output buffer the call returns CKR_OK
    and a length that suffices for the output, and does not end the operation: the next
    call, with a buffer of that length, returns the output and its exact length."""
    one, expected = output_call(raw, target, function)
    rv, length, _ = one(None)
    name = ck.ckr_name(rv)
    assert name == "CKR_OK", (
        f"{function} with a NULL output buffer must return CKR_OK (§5.2): returned {name}")
    assert length >= len(expected), (
        f"{function} with a NULL output buffer must give a length that holds the "
        f"{len(expected)}-byte output (§5.2): got {length}")
    rv, exact, got = one(length)
    name = ck.ckr_name(rv)
    assert name == "CKR_OK", (
        f"{function} after the length query must return CKR_OK (the query does not end the "
        f"operation, §5.2): returned {name}")
    assert (exact, got) == (len(expected), expected), (
        f"{function} after the length query must return the output of an uninterrupted "
        f"call and its exact length {len(expected)}: got {exact} bytes {got.hex()}, "
        f"expected {expected.hex()}")


@pytest.mark.parametrize("short", ["0-bytes", "one-byte-short"])
@pytest.mark.parametrize("function", [pytest.param(f, marks=marks(f)) for f in FUNCTIONS])
def test_short_buffer_reports_length_and_leaves_operation_active(raw, target, function,
                                                                 short):
    """PKCS#11 v2.40 base §5.2, and C_Encrypt §5.8.2, C_Decrypt §5.9.2, C_Digest §5.10.2,
    C_Sign §5.11.2, C_WrapKey §5.13.1: an output buffer too small for the output gives
    CKR_BUFFER_TOO_SMALL and sets the length to the exact number of bytes needed, and
    does not end the operation: the next call, with a large enough buffer, returns the
    output of an uninterrupted call."""
    one, expected = output_call(raw, target, function)
    size = 0 if short == "0-bytes" else len(expected) - 1
    answer = {}

    def short_call():
        rv, answer["length"], _ = one(size)
        if rv != ck.CKR_OK:
            raise ck.CKRError(function, rv)
    expect_code("buffer-too-small", function, short_call,
                what=f"{function} with a {size}-byte output buffer")
    assert answer["length"] == len(expected), (
        f"{function} with a {size}-byte output buffer must set the length to the exact "
        f"{len(expected)} bytes needed (§5.2): got {answer['length']}")
    rv, _, got = one(OUT)
    name = ck.ckr_name(rv)
    assert name == "CKR_OK", (
        f"{function} after CKR_BUFFER_TOO_SMALL must return CKR_OK (the operation stays "
        f"active, §5.2): returned {name}")
    assert got == expected, (
        f"{function} after CKR_BUFFER_TOO_SMALL must return the output of an uninterrupted "
        f"call: got {got.hex()}, expected {expected.hex()}")
