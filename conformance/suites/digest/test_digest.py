"""Message digests, cross-checked with hashlib."""

import hashlib

import pytest

from conformance.names import mechanism

HASHLIB = {
    "CKM_SHA_1": "sha1", "CKM_SHA224": "sha224", "CKM_SHA256": "sha256",
    "CKM_SHA384": "sha384", "CKM_SHA512": "sha512", "CKM_SHA3_224": "sha3_224",
    "CKM_SHA3_256": "sha3_256", "CKM_SHA3_384": "sha3_384", "CKM_SHA3_512": "sha3_512",
}
INPUTS = {
    "empty": b"",
    "short": b"abc",
    # 1 MiB that is not a repetition of the block size, so chunking mistakes show.
    "1MiB": bytes(i * 7 % 251 for i in range(1 << 20)),
}
DIGESTS = pytest.mark.mechanisms(*HASHLIB)
DATA = pytest.mark.parametrize("data", list(INPUTS.values()), ids=list(INPUTS))


@DATA
@DIGESTS
@pytest.mark.function("C_Digest")
def test_digest_single_part_matches_hashlib(session, mechanism_name, data):
    """PKCS#11 v2.40 base §5.10.2 C_Digest: a single-part digest with a SHA-1, SHA-2 or
    SHA-3 digest mechanism equals the algorithm's definition (checked against hashlib)."""
    got = session.digest(data, mechanism=mechanism(mechanism_name))
    expected = hashlib.new(HASHLIB[mechanism_name], data).digest()
    assert got == expected, (
        f"C_Digest({mechanism_name}) of {len(data)} bytes must equal {HASHLIB[mechanism_name]}:"
        f" got {got.hex()}, expected {expected.hex()}")


@DATA
@DIGESTS
@pytest.mark.function("C_DigestUpdate")
def test_digest_multi_part_matches_hashlib(session, mechanism_name, data):
    """PKCS#11 v2.40 base §5.10.3 C_DigestUpdate, §5.10.5 C_DigestFinal: a digest fed in
    uneven parts equals the single-part digest (checked against hashlib)."""
    parts = [data[i:i + 1000] for i in range(0, len(data), 1000)]  # not block-aligned
    got = session.digest(iter(parts), mechanism=mechanism(mechanism_name))
    expected = hashlib.new(HASHLIB[mechanism_name], data).digest()
    assert got == expected, (
        f"C_DigestUpdate x{len(parts)} + C_DigestFinal({mechanism_name}) of {len(data)} bytes "
        f"must equal {HASHLIB[mechanism_name]}: got {got.hex()}, expected {expected.hex()}")
