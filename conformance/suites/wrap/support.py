"""What the wrap suites share: known key values, the reference constructions of the AES key
wrap mechanisms, and thin calls into C_WrapKey / C_UnwrapKey (RSA-OAEP and the cryptography
RSA keys come from conformance.crosscheck).

The module is not collected (no test_ prefix); conftest.py holds the fixtures.
"""

import pytest
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap,
    aes_key_wrap_with_padding,
)
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11._pkcs11 import UnwrapMixin, WrapMixin
from pkcs11.attributes import ALL_CAPABILITIES
from pkcs11.constants import DEFAULT
from pkcs11.exceptions import PKCS11Error

from conformance.names import mechanism
from conformance.suite import returned

AES_WRAPS = ("CKM_AES_KEY_WRAP", "CKM_AES_KEY_WRAP_KWP", "CKM_AES_KEY_WRAP_PAD")
PADDED_WRAPS = ("CKM_AES_KEY_WRAP_KWP", "CKM_AES_KEY_WRAP_PAD")
RSA_WRAPS = ("CKM_RSA_PKCS", "CKM_RSA_PKCS_OAEP")
ALL_WRAPS = tuple(sorted(AES_WRAPS + RSA_WRAPS))
AES_KEY_LENGTHS = (16, 24, 32)
# Keys of any length for the padding mechanisms: AES keys, and generic secrets whose length
# is not a multiple of the 8-byte AES key wrap semiblock.
ANY_KEY_LENGTHS = (16, 20, 24, 32, 33)
SEMIBLOCK = 8


def key_value(length, salt=0):
    """A fixed key value of `length` bytes (different for each salt)."""
    return bytes((i * 37 + 11 + 101 * salt) % 256 for i in range(length))


def kek_value(bits):
    """The known value of the AES wrapping key of `bits` bits."""
    return key_value(bits // 8, salt=1)


def secret_key_type(length):
    return KeyType.AES if length in AES_KEY_LENGTHS else KeyType.GENERIC_SECRET


def length_id(length):
    return f"{length}-byte-key"


# ---- AES key wrap constructions ----------------------------------------------------------

def pkcs7(data, block=SEMIBLOCK):
    """PKCS #7 padding (RFC 5652 §6.3) to a multiple of `block` bytes, 1 to block bytes."""
    pad = block - len(data) % block
    return data + bytes([pad]) * pad


def zero_pad(data, block=SEMIBLOCK):
    return data + bytes(-len(data) % block)


# What each mechanism's output must be, as the mechanism's definition gives it.
DEFINITION = {
    # PKCS#11 v2.40 curr §2.14 AES Key Wrap (for keys that are a multiple of 8 bytes: the
    # 2.40 zero padding then does nothing, and 3.x allows only such input).
    "CKM_AES_KEY_WRAP": "RFC 3394 (SP 800-38F KW)",
    # v2.40 curr §2.14: "the usual padding" to the AES key wrap block size (8 bytes), then
    # RFC 3394; v3.0 curr names it: PKCS #7 padding, then RFC 3394.
    "CKM_AES_KEY_WRAP_PAD": "PKCS #7 padding to a multiple of 8 bytes, then RFC 3394",
    # v3.0 curr, AES Key Wrap: SP 800-38F KWP, which is RFC 5649.
    "CKM_AES_KEY_WRAP_KWP": "RFC 5649 (SP 800-38F KWP)",
}


def reference_wrap(mechanism_name, kek, data):
    """The wrapped key `mechanism_name` must produce, computed with cryptography."""
    if mechanism_name == "CKM_AES_KEY_WRAP":
        return aes_key_wrap(kek, data)
    if mechanism_name == "CKM_AES_KEY_WRAP_PAD":
        return aes_key_wrap(kek, pkcs7(data))
    return aes_key_wrap_with_padding(kek, data)


def reference_unwrap(mechanism_name, kek, wrapped):
    """The key inside `wrapped` by the mechanism's definition; ValueError when it is not a
    valid wrapping (integrity check or padding)."""
    if mechanism_name == "CKM_AES_KEY_WRAP":
        return _unwrap(aes_key_unwrap, kek, wrapped)
    if mechanism_name == "CKM_AES_KEY_WRAP_PAD":
        padded = _unwrap(aes_key_unwrap, kek, wrapped)
        pad = padded[-1]
        if not 1 <= pad <= SEMIBLOCK or padded[-pad:] != bytes([pad]) * pad:
            raise ValueError(f"RFC 3394 unwraps, but the last {SEMIBLOCK} bytes "
                             f"{padded[-SEMIBLOCK:].hex()} are no PKCS #7 padding")
        return padded[:-pad]
    return _unwrap(aes_key_unwrap_with_padding, kek, wrapped)


def _unwrap(unwrap, kek, wrapped):
    try:
        return unwrap(kek, wrapped)
    except (InvalidUnwrap, ValueError) as exc:
        raise ValueError(f"{unwrap.__name__} refuses it ({type(exc).__name__})") from None


# Constructions a module might use instead, to name what came out when it is not the
# definition. Order matters: for keys that are a multiple of 8 bytes several coincide.
CONSTRUCTIONS = (
    ("PKCS #7 padding to a multiple of 8 bytes, then RFC 3394 (the PKCS#11 "
     "CKM_AES_KEY_WRAP_PAD)", lambda kek, key: aes_key_wrap(kek, pkcs7(key))),
    ("RFC 5649 (SP 800-38F KWP, which PKCS#11 3.x names CKM_AES_KEY_WRAP_KWP)",
     aes_key_wrap_with_padding),
    ("RFC 3394 of the key (no padding)", aes_key_wrap),
    ("zero padding to a multiple of 8 bytes, then RFC 5649 with the padded length as MLI",
     lambda kek, key: aes_key_wrap_with_padding(kek, zero_pad(key))),
    ("zero padding to a multiple of 8 bytes, then RFC 3394 (the v2.40 CKM_AES_KEY_WRAP)",
     lambda kek, key: aes_key_wrap(kek, zero_pad(key))),
    ("PKCS #7 padding to a multiple of 16 bytes, then RFC 3394",
     lambda kek, key: aes_key_wrap(kek, pkcs7(key, 16))),
)


def identify(kek, key, wrapped):
    """Which known construction of `key` under `kek` the bytes `wrapped` are."""
    for name, construct in CONSTRUCTIONS:
        try:
            if construct(kek, key) == wrapped:
                return name
        except ValueError:  # RFC 3394 needs at least 16 bytes
            continue
    return "none of " + "; ".join(name for name, _ in CONSTRUCTIONS)


def brief(data):
    """Bytes for a message: all of them when short, else the length, head and tail."""
    if len(data) <= 48:
        return data.hex()
    return f"{len(data)} bytes {data[:16].hex()}...{data[-16:].hex()}"


def describe_unwrapped(kek, wrapped):
    """What the known unwrap functions make of `wrapped`, for failure messages."""
    found = []
    for name, unwrap in (("RFC 3394", aes_key_unwrap), ("RFC 5649", aes_key_unwrap_with_padding)):
        try:
            found.append(f"{name} unwraps it to {brief(unwrap(kek, wrapped))}")
        except (InvalidUnwrap, ValueError):
            found.append(f"{name} does not unwrap it")
    return "; ".join(found)


def der_extent(data):
    """The length of the DER SEQUENCE at the start of `data`, or None."""
    if len(data) < 2 or data[0] != 0x30:
        return None
    if data[1] < 0x80:
        return 2 + data[1]
    size = data[1] & 0x7F
    return 2 + size + int.from_bytes(data[2:2 + size], "big")


def describe_wrapped_der(kek, wrapped):
    """What the known unwrap functions make of a wrapped DER structure (a PKCS #8 key)."""
    found = []
    for name, unwrap in (("RFC 3394", aes_key_unwrap), ("RFC 5649", aes_key_unwrap_with_padding)):
        try:
            data = unwrap(kek, wrapped)
        except (InvalidUnwrap, ValueError):
            found.append(f"{name} does not unwrap it")
            continue
        extent, tail = der_extent(data), ""
        if extent is not None and extent < len(data):
            tail = f": a {extent}-byte DER structure followed by {data[extent:].hex()}"
        found.append(f"{name} unwraps it to {len(data)} bytes{tail}")
    return "; ".join(found)


def other_format_hint(unwrapping_key, mechanism_name, kek, data, **unwrap_arguments):
    """For a failed unwrap of the mechanism's definition: whether the module unwraps the
    other padded construction of the same data instead."""
    other = {"CKM_AES_KEY_WRAP_PAD": "CKM_AES_KEY_WRAP_KWP",
             "CKM_AES_KEY_WRAP_KWP": "CKM_AES_KEY_WRAP_PAD"}.get(mechanism_name)
    if other is None:
        return ""
    try:
        unwrap(unwrapping_key, reference_wrap(other, kek, data), mechanism_name,
               **unwrap_arguments)
    except PKCS11Error:
        return ""
    return f"; it does unwrap {DEFINITION[other]}"


# ---- C_WrapKey / C_UnwrapKey ---------------------------------------------------------------

def wrap(wrapping_key, key, mechanism_name, param=None):
    """C_WrapKey; PKCS11Error on failure. Called through python-pkcs11's implementation
    directly, so that a wrapping key without CKA_WRAP (which python-pkcs11 gives no
    wrap_key method) can be tried too."""
    return WrapMixin.wrap_key(wrapping_key, key, mechanism=mechanism(mechanism_name),
                              mechanism_param=param)


def unwrap(unwrapping_key, data, mechanism_name, param=None, object_class=ObjectClass.SECRET_KEY,
           key_type=KeyType.AES, keep=None, **attributes):
    """C_UnwrapKey with a minimal template: CKA_CLASS, CKA_KEY_TYPE, CKA_TOKEN false and the
    given attributes (e.g. SENSITIVE=False), no usage flags; PKCS11Error on failure. The new
    key is appended to `keep` (the `created` fixture destroys it after the test)."""
    template = {capability: DEFAULT for capability in ALL_CAPABILITIES}
    template.update({Attribute[name]: value for name, value in attributes.items()})
    key = UnwrapMixin.unwrap_key(unwrapping_key, object_class, key_type, data,
                                 mechanism=mechanism(mechanism_name), mechanism_param=param,
                                 capabilities=0, template=template)
    if keep is not None:
        keep.append(key)
    return key


def must_wrap(wrapping_key, key, mechanism_name, param=None, what="a key"):
    try:
        return wrap(wrapping_key, key, mechanism_name, param)
    except PKCS11Error as exc:
        pytest.fail(f"C_WrapKey({mechanism_name}) of {what} must succeed: {returned(exc)}")


def must_unwrap(unwrapping_key, data, mechanism_name, param=None, what="a wrapped key",
                **kwargs):
    try:
        return unwrap(unwrapping_key, data, mechanism_name, param, **kwargs)
    except PKCS11Error as exc:
        pytest.fail(f"C_UnwrapKey({mechanism_name}) of {what} must succeed: {returned(exc)}")


def refusal(call, *args, **kwargs):
    """The CKR name `call` fails with, or None when it succeeds."""
    try:
        call(*args, **kwargs)
    except PKCS11Error as exc:
        return returned(exc)
    return None
