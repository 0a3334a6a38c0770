"""Helpers shared by the error-handling checks: handles and keys over the raw layer (the
`raw` fixture's child process); the return-value assertions are in conformance.suite."""

from pkcs11 import Attribute, KeyType, ObjectClass

from conformance import keypolicy
from conformance import raw as ck
from conformance.names import mechanism

SERIAL, RW = ck.CKF_SERIAL_SESSION, ck.CKF_SERIAL_SESSION | ck.CKF_RW_SESSION
SHA256 = int(mechanism("CKM_SHA256"))
AES_ECB = int(mechanism("CKM_AES_ECB"))
AES_KEY_GEN = int(mechanism("CKM_AES_KEY_GEN"))
AES_KEY_WRAP = int(mechanism("CKM_AES_KEY_WRAP"))
SHA256_RSA_PKCS = int(mechanism("CKM_SHA256_RSA_PKCS"))
RSA_KEY_PAIR_GEN = int(mechanism("CKM_RSA_PKCS_KEY_PAIR_GEN"))
EC_KEY_PAIR_GEN = int(mechanism("CKM_EC_KEY_PAIR_GEN"))
CKA_CLASS = int(Attribute.CLASS)
P256 = bytes.fromhex("06082a8648ce3d030107")  # DER of the OID of secp256r1

# The usages each kind of key gets: every one its type allows, so an Init with a
# mechanism of another family meets only the key type (§5.1.6: CKR_KEY_TYPE_INCONSISTENT
# before CKR_KEY_FUNCTION_NOT_PERMITTED).
SECRET_USAGES = (Attribute.ENCRYPT, Attribute.DECRYPT, Attribute.SIGN, Attribute.VERIFY,
                 Attribute.WRAP, Attribute.UNWRAP)
RSA_USAGES = {"public": (Attribute.VERIFY, Attribute.ENCRYPT, Attribute.WRAP),
              "private": (Attribute.SIGN, Attribute.DECRYPT, Attribute.UNWRAP)}
EC_USAGES = {"public": (Attribute.VERIFY,), "private": (Attribute.SIGN,)}


def unissued(issued):
    """A handle value (a CK_ULONG, not CK_INVALID_HANDLE) that is not among `issued`."""
    issued = set(issued)
    return next(v for v in range(0x7FFFFFF0, 0, -1) if v not in issued)


def logged_in(raw):
    """A read/write session of the child process, with the user logged in."""
    session = raw.open_session(raw.slot, RW)
    raw.login_user(session)
    return session


def claimed_bits(target, *mechanisms, preferred):
    """A key size claimed for every one of these mechanisms: `preferred` if it is (or if
    none lists key sizes), else the smallest one they share."""
    common = None
    for name in mechanisms:
        sizes = target.vendor.claims.get(name, {}).get("key_sizes", ())
        if sizes:
            common = set(sizes) if common is None else common & set(sizes)
    if not common or preferred in common:
        return preferred
    return min(common)


def private_key(raw, target, session):
    """An RSA key pair of session objects, for CKM_SHA256_RSA_PKCS, whose private key has
    CKA_PRIVATE true; returns the private key's handle."""
    bits = claimed_bits(target, "CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_SHA256_RSA_PKCS",
                        preferred=2048)
    public = keypolicy.raw_usages({int(Attribute.TOKEN): keypolicy.on_token(),
                                   int(Attribute.VERIFY): True,
                                   int(Attribute.MODULUS_BITS): bits,
                                   int(Attribute.PUBLIC_EXPONENT): b"\x01\x00\x01"}, "public")
    private = keypolicy.raw_usages({int(Attribute.TOKEN): keypolicy.on_token(),
                                    int(Attribute.PRIVATE): True, int(Attribute.SIGN): True,
                                    int(Attribute.SENSITIVE): True}, "private")
    return raw.generate_key_pair(session, RSA_KEY_PAIR_GEN, public, private)[1]


def aes_key(raw, target, session, **attributes):
    """An AES session key for CKM_AES_ECB encryption (and whatever `attributes`, CKA_*
    names to values, add); returns its handle."""
    bits = claimed_bits(target, "CKM_AES_KEY_GEN", "CKM_AES_ECB", preferred=128)
    template = {int(Attribute.CLASS): int(ObjectClass.SECRET_KEY),
                int(Attribute.KEY_TYPE): int(KeyType.AES),
                int(Attribute.TOKEN): keypolicy.on_token(),
                int(Attribute.VALUE_LEN): bits // 8, int(Attribute.ENCRYPT): True}
    template.update({int(Attribute[name]): value for name, value in attributes.items()})
    return raw.generate_key(session, AES_KEY_GEN, template)


def any_aes_key(raw, target, session):
    """An AES key with every usage an AES key can have, and extractable."""
    return aes_key(raw, target, session, EXTRACTABLE=True,
                   **{usage.name: True for usage in SECRET_USAGES})


def rsa_pair(raw, target, session):
    """An RSA key pair with every usage, the private key CKA_PRIVATE: (public, private)."""
    bits = claimed_bits(target, "CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_RSA_PKCS", preferred=2048)
    public = {int(Attribute.TOKEN): keypolicy.on_token(), int(Attribute.MODULUS_BITS): bits,
              int(Attribute.PUBLIC_EXPONENT): b"\x01\x00\x01"}
    return _pair(raw, session, RSA_KEY_PAIR_GEN, public, RSA_USAGES)


def ec_pair(raw, session):
    """A P-256 key pair with every usage, the private key CKA_PRIVATE: (public, private)."""
    public = {int(Attribute.TOKEN): keypolicy.on_token(), int(Attribute.EC_PARAMS): P256}
    return _pair(raw, session, EC_KEY_PAIR_GEN, public, EC_USAGES)


def _pair(raw, session, mech, public, usages):
    public.update({int(usage): True for usage in usages["public"]})
    private = {int(Attribute.TOKEN): keypolicy.on_token(), int(Attribute.PRIVATE): True,
               int(Attribute.SENSITIVE): True,
               **{int(usage): True for usage in usages["private"]}}
    return raw.generate_key_pair(session, mech, keypolicy.raw_usages(public, "public"),
                                 keypolicy.raw_usages(private, "private"))
