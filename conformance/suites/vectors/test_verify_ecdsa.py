"""ECDSA signature verification known answers: the NIST CAVP FIPS 186-3 SigVer vectors
(asymmetric/ECDSA/FIPS_186-3/SigVer.rsp in the `cryptography_vectors` package), verified
with raw CKM_ECDSA: the test hashes the message with the vector's hash and C_Verify gets
that hash value and the signature as r || s.

Each vector's public key (Qx, Qy) is imported with crosscheck.import_public (a session
object, destroyed after the vector). A case is one claimed curve; its vectors are all
those of the `[P-<bits>,SHA-<n>]` groups of that curve (SHA-1, SHA-224, SHA-256, SHA-384
and SHA-512), in file order: 15 per group, 75 per case, 15 valid and 60 invalid (message,
R, S or Q changed). The file has NIST prime curves only (and binary curves, which no claim
can name); a claimed curve without vectors, a Brainpool curve say, is not applicable.
"""

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import MechanismFlag
from pkcs11.exceptions import PKCS11Error

from conformance.crosscheck import EC_CURVES, HASHES, field_bytes, import_public
from conformance.suite import not_applicable, returned
from conformance.suites.sign.signing import verify_outcome

from . import nist
from .common import judge_sigver

FILE = "asymmetric/ECDSA/FIPS_186-3/SigVer.rsp"
NIST_NAMES = {"secp192r1": "P-192", "secp224r1": "P-224", "secp256r1": "P-256",
              "secp384r1": "P-384", "secp521r1": "P-521"}
HASH_NAMES = {"SHA-1": "sha1", "SHA-224": "sha224", "SHA-256": "sha256", "SHA-384": "sha384",
              "SHA-512": "sha512"}

# Only C_CreateObject is marked, as the prerequisite every case needs: the function under
# test follows from the mechanism.
IMPORTS = pytest.mark.function("C_CreateObject")


def vectors(curve):
    """(vector, hash name) for every vector of the curve's groups."""
    chosen = []
    for vector in nist.load(FILE, "Msg"):
        name, _, sha = nist.header(vector, "").partition(",")
        if name == NIST_NAMES.get(curve) and sha in HASH_NAMES:
            chosen.append((vector, HASH_NAMES[sha]))
    if not chosen:
        not_applicable(f"SigVer.rsp has no vectors for {curve}")
    return chosen


def digest(hash_name, data):
    context = hashes.Hash(HASHES[hash_name]())
    context.update(data)
    return context.finalize()


def signature(vector, curve):
    """r || s, each left-padded to the length of the curve order (v2.40 curr, ECDSA)."""
    width = 2 * field_bytes(curve)
    return b"".join(bytes.fromhex(vector[half].rjust(width, "0")) for half in ("R", "S"))


def import_key(session, vector, curve):
    public = ec.EllipticCurvePublicNumbers(int(vector["Qx"], 16), int(vector["Qy"], 16),
                                           EC_CURVES[curve]()).public_key()
    try:
        return import_public(session, public, MechanismFlag.VERIFY)
    except PKCS11Error as exc:
        pytest.fail(f"C_CreateObject of the {curve} public key of {vector.describe()} must "
                    f"succeed: returned {returned(exc)}")


@pytest.mark.mechanism("CKM_ECDSA")
@IMPORTS
def test_verify_ecdsa_agrees_with_nist_sigver(session, curve):
    """PKCS#11 v2.40 curr, ECDSA: C_Verify with CKM_ECDSA, given the hash value of the
    message and the signature r || s, accepts every valid NIST SigVer signature and rejects
    every invalid one (each r || s of the right length) with CKR_SIGNATURE_INVALID (base
    §5.12.2; hash values longer than the order are truncated by the token)."""
    chosen = vectors(curve)
    results = []
    for vector, hash_name in chosen:
        key = import_key(session, vector, curve)
        try:
            code = verify_outcome(key, digest(hash_name, vector.hex("Msg")),
                                  signature(vector, curve), "CKM_ECDSA")
        finally:
            key.destroy()
        results.append((f"{vector.describe()} {hash_name} ({vector['Result']})",
                        vector["Result"].startswith("P"), code))
    judge_sigver(results, [v for v, _ in chosen], f"C_Verify(CKM_ECDSA) on {curve}")
