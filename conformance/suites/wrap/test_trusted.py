"""Trusted wrapping: CKA_WRAP_WITH_TRUSTED and CKA_TRUSTED (PKCS#11 v2.40 base §4.10 Secret
key objects, §5.14.3 C_WrapKey).

A key with CKA_WRAP_WITH_TRUSTED true can only be wrapped with a wrapping key whose
CKA_TRUSTED is true. CKA_WRAP_WITH_TRUSTED cannot be changed once CK_TRUE (footnote 11 of
the attribute table: it "becomes a read only attribute"), and CKA_TRUSTED can only be set to
CK_TRUE by the SO (footnote 10). These semantics are optional: the checks run only for a
vendor that claims them (`attributes:` in the vendor file).

The trusted wrapping key needs an SO session. Its checks run only on a throwaway token (the
vendor file's `provision`); elsewhere they are not applicable. The SO logs in in a module
child of its own (an application cannot be logged in as SO and as the user at once), which
creates the wrapping key as a public token object with a run-specific label; this worker's
user session then wraps with it, and the SO child destroys exactly that object when the
test module ends.

Return codes. C_WrapKey: §5.14.3 gives CKR_KEY_NOT_WRAPPABLE for a key that cannot be
wrapped with the given wrapping key although its CKA_EXTRACTABLE is true; nothing more
specific exists for the trust rule. C_SetAttributeValue of a read-only attribute:
CKR_ATTRIBUTE_READ_ONLY (§4.1.1 and §4.1.2). CKA_TRUSTED set to CK_TRUE by the user: the spec
names no code for footnote 10; CKR_ATTRIBUTE_READ_ONLY ("an attribute which may not be set
by the application", read-only "under certain circumstances", §4.1.1) and
CKR_USER_NOT_LOGGED_IN ("the appropriate user ... is not logged in", §5.1) both describe it,
so both are named (conformance.returncodes: "trusted-set-by-user").
"""

import contextlib
import uuid

import pytest
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.exceptions import NoSuchKey, PKCS11Error

from conformance import raw as ck
from conformance.isolation import raw_module
from conformance.returncodes import judge
from conformance.suite import OBJECT_LABEL_PREFIX, not_applicable, returned

from .support import (
    describe_unwrapped,
    kek_value,
    key_value,
    must_wrap,
    reference_unwrap,
    refusal,
    wrap,
)

MECHANISM = "CKM_AES_KEY_WRAP"
KW = pytest.mark.mechanism(MECHANISM)
WRAP_WITH_TRUSTED = pytest.mark.attribute("CKA_WRAP_WITH_TRUSTED")
TRUSTED = pytest.mark.attribute("CKA_TRUSTED")
SECRET_KEYS = pytest.mark.object_class("CKO_SECRET_KEY")
IMPORTS = pytest.mark.function("C_CreateObject")
SETS = pytest.mark.function("C_SetAttributeValue")
WRAPS = pytest.mark.function("C_WrapKey")
LENGTH = 16  # the key to be wrapped: AES-128
GUARDED_SALT = 2  # key_value salt of the keys with CKA_WRAP_WITH_TRUSTED
RW = ck.CKF_SERIAL_SESSION | ck.CKF_RW_SESSION


def unique(what):
    """A label no other object has: this run, this test module, `what`."""
    return f"{OBJECT_LABEL_PREFIX}{uuid.uuid4()}-{what}"


def import_key(session, created, what, **attributes):
    """A 16-byte AES session object with a known value, extractable and not sensitive, with
    the further `attributes` (e.g. WRAP_WITH_TRUSTED=True); destroyed after the test."""
    template = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
                Attribute.TOKEN: False, Attribute.VALUE: key_value(LENGTH, GUARDED_SALT),
                Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True}
    template.update({Attribute[name]: value for name, value in attributes.items()})
    try:
        key = session.create_object(template)
    except PKCS11Error as exc:
        pytest.fail(f"C_CreateObject of {what} must succeed: {returned(exc)}")
    created.append(key)
    return key


def read(key, attribute, what):
    try:
        return key[attribute]
    except PKCS11Error as exc:
        pytest.fail(f"C_GetAttributeValue(CKA_{attribute.name}) of {what} must succeed: "
                    f"{returned(exc)}")


def set_attribute(key, attribute, value):
    """C_SetAttributeValue of one attribute: None on success, else the CKR name."""
    try:
        key[attribute] = value
    except PKCS11Error as exc:
        return returned(exc)
    return None


def guarded_key(session, created, made):
    """A key with CKA_WRAP_WITH_TRUSTED true: created so (`made` "at-creation"), or created
    with it false and then set with C_SetAttributeValue ("set-after-creation"; not
    applicable when the module declines the change, which §4.1.2 allows)."""
    if made == "at-creation":
        key = import_key(session, created, "an AES key with CKA_WRAP_WITH_TRUSTED true",
                         WRAP_WITH_TRUSTED=True)
    else:
        key = import_key(session, created, "an AES key with CKA_WRAP_WITH_TRUSTED false",
                         WRAP_WITH_TRUSTED=False)
        got = set_attribute(key, Attribute.WRAP_WITH_TRUSTED, True)
        if got == "CKR_ATTRIBUTE_READ_ONLY":
            not_applicable("the module declines to set CKA_WRAP_WITH_TRUSTED after creation "
                           "(CKR_ATTRIBUTE_READ_ONLY, which §4.1.2 allows)")
        assert got is None, (
            f"C_SetAttributeValue(CKA_WRAP_WITH_TRUSTED = CK_TRUE) on a key where it is "
            f"CK_FALSE must return CKR_OK (or CKR_ATTRIBUTE_READ_ONLY): returned {got}")
    value = read(key, Attribute.WRAP_WITH_TRUSTED, f"the key ({made})")
    assert value is True, (
        f"CKA_WRAP_WITH_TRUSTED must read CK_TRUE once set ({made}): got {value}")
    return key


class TrustedKeks:
    """AES wrapping keys with CKA_TRUSTED true and the value kek_value(bits), made by the SO
    in a module child as public token objects, and found from this worker's user session."""

    def __init__(self, target, session):
        self.target, self.session = target, session
        self.stack = contextlib.ExitStack()
        self.child = self.so_session = None
        # bits -> (label, handle in the child, python-pkcs11 key)
        self.made = target.cache()

    def _so(self):
        token = self.target.vendor.token
        if token.provision is None:
            not_applicable(f"CKA_TRUSTED can only be set by the SO, and the suite logs in as "
                           f"SO only on a throwaway token (token {token.label!r} has no "
                           f"`provision`)")
        if not token.so_pin_env:
            not_applicable("CKA_TRUSTED can only be set by the SO, and the vendor file names "
                           "no token.so_pin_env")
        if self.child is None:
            child = self.stack.enter_context(raw_module(self.target))
            session = child.open_session(child.slot, RW)
            try:
                child.login_so(session)
            except ck.CKRError as exc:
                pytest.fail(f"C_Login(CKU_SO) on the throwaway token must succeed: returned "
                            f"{exc.name}")
            self.child, self.so_session = child, session
        return self.child

    def __call__(self, bits):
        if bits in self.made:
            return self.made[bits][2]
        child = self._so()
        label = unique(f"trusted-kek-{bits}")
        try:
            handle = child.create_object(self.so_session, {
                ck.CKA_CLASS: ck.CKO_SECRET_KEY, ck.CKA_KEY_TYPE: ck.CKK_AES,
                ck.CKA_TOKEN: True, ck.CKA_PRIVATE: False, ck.CKA_LABEL: label.encode(),
                ck.CKA_VALUE: kek_value(bits), ck.CKA_WRAP: True, ck.CKA_UNWRAP: True,
                int(Attribute.TRUSTED): True})
        except ck.CKRError as exc:
            pytest.fail(f"C_CreateObject by the SO of a {bits}-bit AES wrapping key with "
                        f"CKA_TRUSTED true (footnote 10: the SO may set it) must succeed: "
                        f"returned {exc.name}")
        self.made[bits] = (label, handle, None)
        try:
            key = self.session.get_key(object_class=ObjectClass.SECRET_KEY, label=label)
        except NoSuchKey:
            pytest.fail(f"the public token object the SO created ({label}) must be found by "
                        f"the user's application: C_FindObjects found none")
        self.made[bits] = (label, handle, key)
        trusted = read(key, Attribute.TRUSTED, "the wrapping key the SO created")
        assert trusted is True, (
            f"CKA_TRUSTED of the wrapping key the SO created with CKA_TRUSTED true must "
            f"read CK_TRUE from the user's session: got {trusted}")
        return key

    def close(self):
        """Destroy exactly the token objects made here (by their handles in the SO child)
        and check from the user's session that none is left."""
        problems = []
        try:
            for label, handle, _ in self.made.values():
                try:
                    self.child.destroy_object(self.so_session, handle)
                except ck.CKRError as exc:
                    problems.append(f"C_DestroyObject of {label} returned {exc.name}")
                    continue
                if list(self.session.get_objects({Attribute.LABEL: label})):
                    problems.append(f"{label} is still found after C_DestroyObject")
        finally:
            self.stack.close()
        assert not problems, (
            "the SO must destroy the trusted wrapping keys it made: " + "; ".join(problems))


@pytest.fixture(scope="module")
def trusted_kek(target, session):
    """trusted_kek(bits): the AES wrapping key with value kek_value(bits) and CKA_TRUSTED
    true, a token object the SO made (once per test module; not applicable unless the token
    is a throwaway)."""
    keks = TrustedKeks(target, session)
    yield keks
    keks.close()


# --- wrapping ----------------------------------------------------------------------------


@pytest.mark.parametrize("made", ["at-creation", "set-after-creation"])
@WRAP_WITH_TRUSTED
@KW
@IMPORTS
@WRAPS
def test_wrap_with_trusted_key_by_untrusted_wrapping_key_is_refused(session, kek, wrap_target,
                                                                    created, key_bits, made):
    """PKCS#11 v2.40 base §4.10 Secret key objects, §5.14.3 C_WrapKey: a key with
    CKA_WRAP_WITH_TRUSTED true (at creation or set later) can only be wrapped with a
    wrapping key whose CKA_TRUSTED is true; with an untrusted one (CKA_TRUSTED false, the
    only value a user can give it) C_WrapKey returns CKR_KEY_NOT_WRAPPABLE, while the same
    wrapping key still wraps a key without CKA_WRAP_WITH_TRUSTED."""
    wrapping_key = kek(key_bits)
    trusted = read(wrapping_key, Attribute.TRUSTED, "a wrapping key the user imported")
    assert trusted is False, (
        f"CKA_TRUSTED of a wrapping key the user imported without it must be CK_FALSE "
        f"(footnote 10: only the SO can set it): got {trusted}")
    must_wrap(wrapping_key, wrap_target(LENGTH), MECHANISM,
              what=f"a {LENGTH}-byte AES key without CKA_WRAP_WITH_TRUSTED by an untrusted key")
    key = guarded_key(session, created, made)
    got = refusal(wrap, wrapping_key, key, MECHANISM)
    judge("C_WrapKey", "key-not-wrappable", got or "CKR_OK",
          f"C_WrapKey({MECHANISM}) of a key with CKA_WRAP_WITH_TRUSTED true ({made}) by a "
          f"{key_bits}-bit wrapping key with CKA_TRUSTED false")


@WRAP_WITH_TRUSTED
@TRUSTED
@KW
@IMPORTS
@WRAPS
def test_wrap_with_trusted_key_by_trusted_wrapping_key_unwraps(session, trusted_kek, created,
                                                               key_bits):
    """PKCS#11 v2.40 base §4.10 Secret key objects, §5.14.3 C_WrapKey: a wrapping key with
    CKA_TRUSTED true (set by the SO) wraps a key with CKA_WRAP_WITH_TRUSTED true, and the
    result is the RFC 3394 wrapping of the key under the wrapping key's value (cryptography's
    aes_key_unwrap recovers the key)."""
    wrapping_key = trusted_kek(key_bits)
    key = guarded_key(session, created, "at-creation")
    wrapped = must_wrap(wrapping_key, key, MECHANISM,
                        what=f"a key with CKA_WRAP_WITH_TRUSTED true by a {key_bits}-bit "
                             f"wrapping key with CKA_TRUSTED true")
    expected = key_value(LENGTH, GUARDED_SALT)
    try:
        value = reference_unwrap(MECHANISM, kek_value(key_bits), wrapped)
    except ValueError as exc:
        pytest.fail(f"C_WrapKey({MECHANISM}) by the trusted wrapping key must give the "
                    f"RFC 3394 wrapping of the key: {exc}; "
                    f"{describe_unwrapped(kek_value(key_bits), wrapped)}")
    assert value == expected, (
        f"C_WrapKey({MECHANISM}) by the trusted wrapping key must wrap the key "
        f"{expected.hex()}: cryptography unwraps {value.hex()}")


# --- CKA_WRAP_WITH_TRUSTED only becomes true ----------------------------------------------


@WRAP_WITH_TRUSTED
@SECRET_KEYS
@IMPORTS
@SETS
def test_set_attribute_value_wrap_with_trusted_cannot_be_cleared(session, created):
    """PKCS#11 v2.40 base §4.10 Secret key objects, §4.1.2 Modifying objects:
    CKA_WRAP_WITH_TRUSTED cannot be changed once CK_TRUE (footnote 11, it becomes read only);
    setting it to CK_FALSE returns CKR_ATTRIBUTE_READ_ONLY and it stays CK_TRUE."""
    key = guarded_key(session, created, "at-creation")
    got = set_attribute(key, Attribute.WRAP_WITH_TRUSTED, False)
    judge("C_SetAttributeValue", "attribute-read-only", got or "CKR_OK",
          "C_SetAttributeValue(CKA_WRAP_WITH_TRUSTED = CK_FALSE) on a key where it is CK_TRUE")
    value = read(key, Attribute.WRAP_WITH_TRUSTED, "the key")
    assert value is True, (
        f"CKA_WRAP_WITH_TRUSTED must stay CK_TRUE after the refused change: got {value}")


@WRAP_WITH_TRUSTED
@SECRET_KEYS
@IMPORTS
@SETS
def test_set_attribute_value_wrap_with_trusted_set_becomes_read_only(session, created):
    """PKCS#11 v2.40 base §4.10 Secret key objects, §4.1.2 Modifying objects:
    CKA_WRAP_WITH_TRUSTED may go from CK_FALSE to CK_TRUE (a token may decline with
    CKR_ATTRIBUTE_READ_ONLY and change nothing); once set it reads CK_TRUE and cannot be
    cleared again (CKR_ATTRIBUTE_READ_ONLY, footnote 11)."""
    key = import_key(session, created, "an AES key with CKA_WRAP_WITH_TRUSTED false",
                     WRAP_WITH_TRUSTED=False)
    what = "C_SetAttributeValue(CKA_WRAP_WITH_TRUSTED = CK_TRUE) on a key where it is CK_FALSE"
    got = set_attribute(key, Attribute.WRAP_WITH_TRUSTED, True)
    assert got in (None, "CKR_ATTRIBUTE_READ_ONLY"), (
        f"{what} must return CKR_OK (or CKR_ATTRIBUTE_READ_ONLY where the token does not "
        f"support the change): returned {got}")
    changed = got is None
    value = read(key, Attribute.WRAP_WITH_TRUSTED, "the key")
    assert value is changed, (
        f"CKA_WRAP_WITH_TRUSTED must read {'CK_TRUE after' if changed else 'CK_FALSE after'} "
        f"{what} returned {got or 'CKR_OK'}: got {value}")
    if changed:
        again = set_attribute(key, Attribute.WRAP_WITH_TRUSTED, False)
        judge("C_SetAttributeValue", "attribute-read-only", again or "CKR_OK",
              "C_SetAttributeValue(CKA_WRAP_WITH_TRUSTED = CK_FALSE) after it was set to "
              "CK_TRUE")


# --- CKA_TRUSTED is the SO's ---------------------------------------------------------------


def create_trusted_as_user(session):
    """C_CreateObject of an AES session key with CKA_TRUSTED true in the user's session:
    the CKR name it returned (None for CKR_OK) and the objects that appeared, which are
    destroyed again."""
    before = {obj.handle for obj in session.get_objects()}
    got = refusal(session.create_object, {
        Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
        Attribute.TOKEN: False, Attribute.LABEL: unique("user-trusted"),
        Attribute.VALUE: kek_value(128), Attribute.WRAP: True, Attribute.TRUSTED: True})
    appeared = [obj for obj in session.get_objects() if obj.handle not in before]
    for obj in appeared:
        with contextlib.suppress(PKCS11Error):
            obj.destroy()
    return got, appeared


@TRUSTED
@SECRET_KEYS
@IMPORTS
def test_create_object_trusted_by_user_is_refused(session):
    """PKCS#11 v2.40 base §4.10 Secret key objects, §4.1.1 Creating objects: CKA_TRUSTED can
    only be set to CK_TRUE by the SO (footnote 10); C_CreateObject with CKA_TRUSTED true in
    the user's session is refused with CKR_ATTRIBUTE_READ_ONLY or CKR_USER_NOT_LOGGED_IN."""
    got, _ = create_trusted_as_user(session)
    judge("C_CreateObject", "trusted-set-by-user", got or "CKR_OK",
          "C_CreateObject of an AES key with CKA_TRUSTED true in the user's session")


@TRUSTED
@SECRET_KEYS
@IMPORTS
def test_create_object_trusted_by_user_creates_no_object(session):
    """PKCS#11 v2.40 base §5.7.1 C_CreateObject: a C_CreateObject that cannot support the
    precise template (here CKA_TRUSTED true in the user's session, footnote 10) fails and
    returns without creating any object: C_FindObjects finds no new object afterwards."""
    got, appeared = create_trusted_as_user(session)
    if got is None:
        not_applicable("the module created the key (checked by "
                       "test_create_object_trusted_by_user_is_refused)")
    assert not appeared, (
        f"C_CreateObject that returned {got} must not create an object: {len(appeared)} new "
        f"object(s) found afterwards")


@TRUSTED
@SECRET_KEYS
@IMPORTS
@SETS
def test_set_attribute_value_trusted_by_user_is_refused(session, created):
    """PKCS#11 v2.40 base §4.10 Secret key objects, §4.1.2 Modifying objects: CKA_TRUSTED can
    only be set to CK_TRUE by the SO (footnote 10); C_SetAttributeValue(CKA_TRUSTED = CK_TRUE)
    in the user's session is refused (CKR_ATTRIBUTE_READ_ONLY or CKR_USER_NOT_LOGGED_IN) and
    the key stays untrusted."""
    key = import_key(session, created, "an AES wrapping key", WRAP=True)
    got = set_attribute(key, Attribute.TRUSTED, True)
    judge("C_SetAttributeValue", "trusted-set-by-user", got or "CKR_OK",
          "C_SetAttributeValue(CKA_TRUSTED = CK_TRUE) in the user's session")
    value = read(key, Attribute.TRUSTED, "the key")
    assert value is False, (
        f"CKA_TRUSTED must stay CK_FALSE after the refused change: got {value}")
