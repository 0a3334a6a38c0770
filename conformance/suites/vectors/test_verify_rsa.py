"""RSA signature verification known answers: the NIST CAVP FIPS 186-3 SigVer vectors for
RSASSA-PKCS1-v1_5 (SigVer15_186-3.rsp) and RSASSA-PSS (SigVerPSS_186-3.rsp, salt length
10 bytes, MGF1 with the signature's hash), as shipped in the `cryptography_vectors` package
(asymmetric/RSA/FIPS_186-2).

Each vector's public key (n of its group, its own e) is imported with crosscheck.import_public
(a session object, once per key per module). A case is one hash-and-sign mechanism and one
claimed modulus size; its vectors are all those of the `[mod = <size>]` group with the
mechanism's hash (SHAAlg), in file order: 18 per case, 3 valid and 15 invalid (message,
e, or signature changed, or a malformed encoded message).
"""

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pkcs11 import MechanismFlag
from pkcs11.exceptions import PKCS11Error

from conformance.crosscheck import HASH_MECHANISMS, MGF1, import_public
from conformance.returncodes import judge
from conformance.suite import not_applicable, returned
from conformance.suites.sign.signing import verify_outcome

from . import nist
from .common import judge_sigver

DIRECTORY = "asymmetric/RSA/FIPS_186-2"
# Hash-and-sign mechanisms, the hash each applies, and its SHAAlg in the NIST files.
PKCS1_V15 = {"CKM_SHA1_RSA_PKCS": "sha1", "CKM_SHA224_RSA_PKCS": "sha224",
             "CKM_SHA256_RSA_PKCS": "sha256", "CKM_SHA384_RSA_PKCS": "sha384",
             "CKM_SHA512_RSA_PKCS": "sha512"}
PSS = {"CKM_SHA1_RSA_PKCS_PSS": "sha1", "CKM_SHA224_RSA_PKCS_PSS": "sha224",
       "CKM_SHA256_RSA_PKCS_PSS": "sha256", "CKM_SHA384_RSA_PKCS_PSS": "sha384",
       "CKM_SHA512_RSA_PKCS_PSS": "sha512"}
SHA_ALG = {"sha1": "SHA1", "sha224": "SHA224", "sha256": "SHA256", "sha384": "SHA384",
           "sha512": "SHA512"}
PSS_SALT_BYTES = 10  # "# Salt len: 10" in SigVerPSS_186-3.rsp; every SaltVal has 10 bytes

# Only C_CreateObject is marked, as the prerequisite every case needs: the function under
# test follows from the mechanism.
IMPORTS = pytest.mark.function("C_CreateObject")


def vectors(file, hash_name, key_bits):
    chosen = [v for v in nist.load(f"{DIRECTORY}/{file}", "SHAAlg")
              if nist.header(v, "mod") == str(key_bits) and v["SHAAlg"] == SHA_ALG[hash_name]]
    if not chosen:
        not_applicable(f"{file} has no {key_bits}-bit {hash_name} vectors")
    return chosen


@pytest.fixture(scope="module")
def public_key(target, session):
    """The module public key object for (n, e), imported once per module."""
    made = target.cache()

    def key(vector):
        n, e = int(vector["n"], 16), int(vector["e"], 16)
        if (n, e) not in made:
            try:
                made[n, e] = import_public(session, rsa.RSAPublicNumbers(e, n).public_key(),
                                           MechanismFlag.VERIFY)
            except PKCS11Error as exc:
                pytest.fail(f"C_CreateObject of the RSA public key of {vector.describe()} "
                            f"must succeed: returned {returned(exc)}")
        return made[n, e]

    yield key
    for made_key in made.values():
        made_key.destroy()


def verdict(public, vector, mechanism_name, param):
    """(description, valid, the CKR name C_Verify returned) of one vector."""
    return (f"{vector.describe()} ({vector['Result']})", vector["Result"].startswith("P"),
            verify_outcome(public, vector.hex("Msg"), vector.hex("S"), mechanism_name, param))


@pytest.mark.mechanisms(*PKCS1_V15)
@IMPORTS
def test_verify_rsa_pkcs_agrees_with_nist_sigver(public_key, mechanism_name, key_bits):
    """PKCS#11 v2.40 curr, PKCS #1 v1.5 RSA signature with hashing: C_Verify accepts every
    valid NIST SigVer15 signature (RSASSA-PKCS1-v1_5 with the mechanism's hash) and rejects
    every invalid one (each of the modulus length) with CKR_SIGNATURE_INVALID (base
    §5.12.2)."""
    chosen = vectors("SigVer15_186-3.rsp", PKCS1_V15[mechanism_name], key_bits)
    judge_sigver([verdict(public_key(v), v, mechanism_name, None) for v in chosen], chosen,
                 f"C_Verify({mechanism_name}) with {key_bits}-bit keys")


@pytest.mark.mechanisms(*PSS)
@IMPORTS
def test_verify_rsa_pss_agrees_with_nist_sigver(public_key, mechanism_name, key_bits):
    """PKCS#11 v2.40 curr, PKCS #1 RSA PSS signature with hashing: with
    CK_RSA_PKCS_PSS_PARAMS (the mechanism's hash, MGF1 with the same hash, sLen 10), C_Verify
    accepts every valid NIST SigVerPSS signature and rejects every invalid one with
    CKR_SIGNATURE_INVALID (base §5.12.2). Refuse or be right: sLen 10 is not a claimable
    salt length here, so a module may instead refuse these parameters for every vector
    alike, with CKR_MECHANISM_PARAM_INVALID (base §5.1.6)."""
    hash_name = PSS[mechanism_name]
    chosen = vectors("SigVerPSS_186-3.rsp", hash_name, key_bits)
    param = (HASH_MECHANISMS[hash_name], MGF1[hash_name], PSS_SALT_BYTES)
    results = [verdict(public_key(v), v, mechanism_name, param) for v in chosen]
    what = f"C_Verify({mechanism_name}, sLen {PSS_SALT_BYTES}) with {key_bits}-bit keys"
    codes = {code for _, _, code in results}
    if len(codes) == 1 and codes != {"CKR_OK"} and codes != {"CKR_SIGNATURE_INVALID"}:
        # the parameters are refused, the same way for every vector: not supported
        judge("C_VerifyInit", "mechanism-param-invalid", codes.pop(), what)
        return
    judge_sigver(results, chosen, what)
