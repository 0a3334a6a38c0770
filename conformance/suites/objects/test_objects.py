"""Object lifetime, search, copy and visibility (PKCS#11 v2.40 base §4.4, §5.6.2, §5.7).

Every check runs in a module child (the `raw` fixture: its own application, its own login),
through the ctypes layer, on objects the test creates itself: session objects wherever
possible. The two checks that need a token object create one each, with a run-specific
label, and the `token_label` fixture destroys exactly the token objects carrying that
label when the test ends, whatever happened.
"""

import uuid

import pytest

from conformance import raw as ck
from conformance.isolation import raw_module
from conformance.returncodes import judge
from conformance.suite import OBJECT_LABEL_PREFIX, expect_code

RW = ck.CKF_SERIAL_SESSION | ck.CKF_RW_SESSION
RO = ck.CKF_SERIAL_SESSION
TRUE = b"\x01"
FINDS = (pytest.mark.function("C_FindObjectsInit"), pytest.mark.function("C_FindObjects"),
         pytest.mark.function("C_FindObjectsFinal"))


def finds(test):
    for mark in FINDS:
        test = mark(test)
    return test


def unique(what):
    """A label no other object has: this run, this test, `what`."""
    return f"{OBJECT_LABEL_PREFIX}{uuid.uuid4()}-{what}".encode()


def logged_in(module):
    """A read/write session of `module`'s application, logged in as the user."""
    session = module.open_session(module.slot, RW)
    module.login_user(session)
    return session


def find(module, session, template):
    """Every handle C_FindObjectsInit/C_FindObjects/C_FindObjectsFinal returns."""
    module.find_objects_init(session, template)
    found = []
    try:
        while batch := module.find_objects_next(session, 16):
            found += batch
    finally:
        module.find_objects_final(session)
    return set(found)


def data_object(label, extra=None):
    """A public CKO_DATA session object's template, updated with `extra`."""
    return {ck.CKA_CLASS: ck.CKO_DATA, ck.CKA_TOKEN: False, ck.CKA_PRIVATE: False,
            ck.CKA_LABEL: label, ck.CKA_VALUE: b"pkcs11-conformance data", **(extra or {})}


def aes_key(label, value, **flags):
    """An AES secret key session object's template with a known value."""
    return {ck.CKA_CLASS: ck.CKO_SECRET_KEY, ck.CKA_KEY_TYPE: ck.CKK_AES,
            ck.CKA_TOKEN: False, ck.CKA_LABEL: label, ck.CKA_VALUE: value,
            **{getattr(ck, "CKA_" + k.upper()): v for k, v in flags.items()}}


def read(module, session, obj, kind, what):
    """One attribute by the two-call convention, or a FAIL naming the return code."""
    rv, [(_, _, value)] = module.get_attribute_values(session, obj, [kind])
    if rv != ck.CKR_OK or value is None:
        pytest.fail(f"C_GetAttributeValue of {what} must succeed: returned {ck.ckr_name(rv)}")
    return value


@pytest.fixture
def token_label(target):
    """The label of the one token object a test creates. When the test ends, a fresh
    module child logs in and destroys the token objects with this label (no other object
    has it), then checks that none is left."""
    label = unique("token-object")
    yield label
    with raw_module(target) as module:
        session = logged_in(module)
        for handle in find(module, session, {ck.CKA_TOKEN: True, ck.CKA_LABEL: label}):
            module.destroy_object(session, handle)
        left = find(module, session, {ck.CKA_TOKEN: True, ck.CKA_LABEL: label})
    assert not left, (
        f"C_DestroyObject must remove the test's token object {label.decode()}: "
        f"{len(left)} still found")


# --- lifetime --------------------------------------------------------------------------


@pytest.mark.object_class("CKO_DATA")
@pytest.mark.function("C_CloseSession")
@pytest.mark.function("C_CreateObject")
def test_close_session_destroys_its_session_objects(raw):
    """PKCS#11 v2.40 base §5.6.2 C_CloseSession: closing a session destroys the session
    objects it created, although another session of the application is still open: their
    handles become invalid (CKR_OBJECT_HANDLE_INVALID) and C_FindObjects no longer finds
    them."""
    home = logged_in(raw)
    other = raw.open_session(raw.slot, RW)
    label = unique("session-object")
    obj = raw.create_object(other, data_object(label))
    assert find(raw, home, {ck.CKA_LABEL: label}) == {obj}, (
        "a session object must be found from every session of the application while the "
        "session that created it is open: it was not")
    raw.close_session(other)
    expect_code("object-handle-invalid", "C_GetAttributeValue", raw.get_attribute_ulong, home,
                obj, ck.CKA_CLASS, what="C_GetAttributeValue(CKA_CLASS) of a session object "
                "whose session was closed")
    left = find(raw, home, {ck.CKA_LABEL: label})
    assert not left, (
        f"C_FindObjects must not find a session object after its session was closed: found "
        f"{len(left)}")


@pytest.mark.object_class("CKO_DATA")
@pytest.mark.function("C_DestroyObject")
@pytest.mark.function("C_CreateObject")
def test_destroy_object_destroys_it(raw):
    """PKCS#11 v2.40 base §5.7.3 C_DestroyObject: after C_DestroyObject the object's handle
    is invalid (CKR_OBJECT_HANDLE_INVALID, also for a second C_DestroyObject) and
    C_FindObjects no longer finds it."""
    home = logged_in(raw)
    label = unique("destroyed")
    obj = raw.create_object(home, data_object(label))
    raw.destroy_object(home, obj)
    expect_code("object-handle-invalid", "C_GetAttributeValue", raw.get_attribute_ulong, home,
                obj, ck.CKA_CLASS, what="C_GetAttributeValue(CKA_CLASS) of a destroyed object")
    expect_code("object-handle-invalid", "C_DestroyObject", raw.destroy_object, home, obj,
                what="a second C_DestroyObject of the same handle")
    left = find(raw, home, {ck.CKA_LABEL: label})
    assert not left, f"C_FindObjects must not find a destroyed object: found {len(left)}"


@finds
@pytest.mark.object_class("CKO_DATA")
@pytest.mark.function("C_CreateObject")
def test_create_object_token_object_persists(target, raw, token_label):
    """PKCS#11 v2.40 base §4.4 Storage objects, §5.7.1 C_CreateObject: a token object
    (CKA_TOKEN true) outlives the session and the login it was created in: after
    C_CloseAllSessions a new session finds it, with its value, before and after a new
    login, and so does another application that loads the module afresh."""
    value = uuid.uuid4().bytes
    session = logged_in(raw)
    raw.create_object(session, data_object(token_label, {ck.CKA_TOKEN: True, ck.CKA_VALUE: value}))
    raw.close_all_sessions(raw.slot)

    def check(module, session, when):
        found = find(module, session, {ck.CKA_LABEL: token_label, ck.CKA_TOKEN: True})
        assert len(found) == 1, (
            f"the token object must be found once {when}: found {len(found)} objects")
        got = read(module, session, next(iter(found)), ck.CKA_VALUE,
                   f"the token object's CKA_VALUE {when}")
        assert got == value, (
            f"the token object must keep its CKA_VALUE {when}: got {got.hex()}, expected "
            f"{value.hex()}")

    later = raw.open_session(raw.slot, RW)
    check(raw, later, "in a new session after C_CloseAllSessions")
    raw.login_user(later)
    check(raw, later, "after a new C_Login")
    with raw_module(target) as other:
        check(other, other.open_session(other.slot, RO), "by another application")


# --- search ----------------------------------------------------------------------------

SEARCHES = ["CKA_APPLICATION", "CKA_CLASS", "CKA_ID", "CKA_KEY_TYPE", "CKA_LABEL",
            "empty-template"]
UNIQUE = {"CKA_APPLICATION", "CKA_ID", "CKA_LABEL"}  # values only this test's objects have
NAMES = {ck.CKO_DATA: "CKO_DATA", ck.CKO_SECRET_KEY: "CKO_SECRET_KEY", ck.CKK_AES: "CKK_AES",
         ck.CKK_GENERIC_SECRET: "CKK_GENERIC_SECRET"}


def population(tag):
    """Four objects that differ in every searchable attribute: two public data objects
    (CKA_APPLICATION, no CKA_ID or CKA_KEY_TYPE) and two secret keys (CKA_ID and
    CKA_KEY_TYPE, no CKA_APPLICATION), all session objects with run-specific labels."""
    def text(what):
        return f"{OBJECT_LABEL_PREFIX}{tag}-{what}".encode()
    return {
        "data-1": data_object(text("data-1"), {ck.CKA_APPLICATION: text("app-1")}),
        "data-2": data_object(text("data-2"), {ck.CKA_APPLICATION: text("app-2")}),
        "aes": aes_key(text("aes"), bytes(range(16)), id=text("id-aes")),
        "generic": {ck.CKA_CLASS: ck.CKO_SECRET_KEY, ck.CKA_KEY_TYPE: ck.CKK_GENERIC_SECRET,
                    ck.CKA_TOKEN: False, ck.CKA_LABEL: text("generic"),
                    ck.CKA_ID: text("id-generic"), ck.CKA_VALUE: bytes(range(32))},
    }


def describe(template, labels):
    parts = []
    for kind, value in template.items():
        kind_name = next(k for k, v in vars(ck).items() if k.startswith("CKA_") and v == kind)
        if kind == ck.CKA_LABEL and value in labels:
            shown = f"label of {labels[value]}"
        elif isinstance(value, int):
            shown = NAMES.get(value, str(value))
        else:
            shown = value.decode()
        parts.append(f"{kind_name}={shown}")
    return "{" + ", ".join(parts) + "}"


@pytest.mark.parametrize("attribute", SEARCHES)
@finds
@pytest.mark.function("C_CreateObject")
def test_find_objects_honours_every_template_attribute(raw, attribute):
    """PKCS#11 v2.40 base §5.7.7 C_FindObjectsInit: C_FindObjects returns the objects that
    match every attribute of the template exactly (an empty template matches every
    object): searching four objects of the test by the attribute, alone and together with
    each object's label, finds exactly those that have that value, and a value that
    differs (one byte longer or shorter) finds none of them."""
    home = logged_in(raw)
    objects = population(uuid.uuid4())
    handles = {name: raw.create_object(home, template) for name, template in objects.items()}
    ours = set(handles.values())
    names = {handle: name for name, handle in handles.items()}
    labels = {template[ck.CKA_LABEL]: name for name, template in objects.items()}
    wrong = []

    def expect(template, expected, exact):
        found = find(raw, home, template)
        got = found if exact else found & ours
        if got != expected:
            wrong.append(f"{describe(template, labels)} found "
                         f"{sorted(names.get(h, 'an object of another test') for h in got)}, "
                         f"expected {sorted(names[h] for h in expected)}")

    if attribute == "empty-template":
        expect({}, ours, exact=False)
    else:
        kind = getattr(ck, attribute)
        exact = attribute in UNIQUE  # others' objects may share a class or key type
        values = sorted({t[kind] for t in objects.values() if kind in t}, key=repr)
        for value in values:
            having = {handles[n] for n, t in objects.items() if t.get(kind) == value}
            expect({kind: value}, having, exact)
            for name, template in objects.items():
                if kind == ck.CKA_LABEL:
                    break  # searching by label alone is the check
                expect({kind: value, ck.CKA_LABEL: template[ck.CKA_LABEL]},
                       {handles[name]} & having, exact=True)
            if isinstance(value, bytes):
                expect({kind: value + b"-"}, set(), exact=False)
                expect({kind: value[:-1]}, set(), exact=False)
    assert not wrong, (
        f"C_FindObjects must return exactly the objects matching every attribute of the "
        f"template: {len(wrong)} searches differ, e.g. " + "; ".join(wrong[:3]))


@finds
@pytest.mark.object_class("CKO_DATA")
@pytest.mark.function("C_Login")
def test_find_objects_hides_private_objects_before_login(target, raw, token_label):
    """PKCS#11 v2.40 base §4.4 Storage objects: a private object (CKA_PRIVATE true) cannot
    be accessed until the user has logged in, so C_FindObjects of an application that has
    not logged in does not return a private token object another application created; once
    it logs in, it finds the object."""
    raw.create_object(logged_in(raw), data_object(token_label, {ck.CKA_TOKEN: True,
                                                               ck.CKA_PRIVATE: True}))
    with raw_module(target) as other:
        session = other.open_session(other.slot, RO)
        found = find(other, session, {ck.CKA_LABEL: token_label})
        assert not found, (
            f"C_FindObjects before C_Login must not return a private object: found "
            f"{len(found)}")
        other.login_user(session)
        found = find(other, session, {ck.CKA_LABEL: token_label})
        assert len(found) == 1, (
            f"C_FindObjects after C_Login must return the private object once: found "
            f"{len(found)}")


# --- copies ----------------------------------------------------------------------------

COPIES = (pytest.mark.object_class("CKO_SECRET_KEY"), pytest.mark.function("C_CopyObject"))


def copies(test):
    for mark in COPIES:
        test = mark(test)
    return test


@copies
@pytest.mark.function("C_CreateObject")
def test_copy_object_applies_template(raw):
    """PKCS#11 v2.40 base §5.7.2 C_CopyObject, §4.1.3 Copying objects: the copy of a key is
    a new object with the template's new CKA_LABEL and the original's class, key type and
    value, and the original keeps its label. A token may decline to change CKA_LABEL
    during a copy (CKR_ATTRIBUTE_READ_ONLY, footnote 8); the copy with an empty template
    is then checked."""
    home = logged_in(raw)
    label, new_label, value = unique("original"), unique("copy"), uuid.uuid4().bytes
    key = raw.create_object(home, aes_key(label, value, sensitive=False, extractable=True))
    try:
        copy = raw.copy_object(home, key, {ck.CKA_LABEL: new_label})
    except ck.CKRError as exc:
        assert exc.name == "CKR_ATTRIBUTE_READ_ONLY", (
            f"C_CopyObject with a new CKA_LABEL must return CKR_OK (or CKR_ATTRIBUTE_READ_ONLY "
            f"where the token does not change labels during a copy): returned {exc.name}")
        copy, new_label = raw.copy_object(home, key, {}), label
    assert copy != key, f"C_CopyObject must return a new handle: got the original's ({key})"
    for kind, attribute, want in ((ck.CKA_LABEL, "CKA_LABEL", new_label),
                                  (ck.CKA_VALUE, "CKA_VALUE", value)):
        got = read(raw, home, copy, kind, f"{attribute} of the copy")
        assert got == want, f"the copy must have {attribute} {want!r}: got {got!r}"
    for kind, attribute, want in ((ck.CKA_CLASS, "CKA_CLASS", ck.CKO_SECRET_KEY),
                                  (ck.CKA_KEY_TYPE, "CKA_KEY_TYPE", ck.CKK_AES)):
        got = raw.get_attribute_ulong(home, copy, kind)
        assert got == want, f"the copy must have {attribute} {NAMES[want]}: got {got:#x}"
    got = read(raw, home, key, ck.CKA_LABEL, "the original")
    assert got == label, f"the original must keep its CKA_LABEL: got {got!r}"


@copies
@pytest.mark.function("C_CreateObject")
def test_copy_object_keeps_sensitive_key_sensitive(raw):
    """PKCS#11 v2.40 base §5.7.2 C_CopyObject: a copy of a sensitive key made with an empty
    template is sensitive too: CKA_SENSITIVE reads CK_TRUE and its CKA_VALUE cannot be
    revealed (CKR_ATTRIBUTE_SENSITIVE)."""
    home = logged_in(raw)
    key = raw.create_object(home, aes_key(unique("sensitive"), bytes(16), sensitive=True))
    copy = raw.copy_object(home, key, {})
    got = read(raw, home, copy, ck.CKA_SENSITIVE, "CKA_SENSITIVE of the copy")
    assert got == TRUE, f"the copy of a sensitive key must be sensitive: got {got.hex()}"
    rv, [(_, length, _)] = raw.get_attribute_value_into(home, copy, [(ck.CKA_VALUE, 64)])
    what = "C_GetAttributeValue(CKA_VALUE) of the copy of a sensitive key"
    assert length == ck.CK_UNAVAILABLE_INFORMATION, (
        f"{what}: ulValueLen must be CK_UNAVAILABLE_INFORMATION: got {length}")
    judge("C_GetAttributeValue", "attribute-sensitive", ck.ckr_name(rv), what)


@pytest.mark.parametrize("change", ["CKA_EXTRACTABLE-to-true", "CKA_SENSITIVE-to-false"])
@copies
@pytest.mark.function("C_CreateObject")
def test_copy_object_cannot_weaken_protection(raw, change):
    """PKCS#11 v2.40 base §5.7.2 C_CopyObject, §4.10 Secret key objects: a copy cannot
    clear CKA_SENSITIVE of a sensitive key nor set CKA_EXTRACTABLE of an unextractable
    one (both are read only then, footnotes 11 and 12): C_CopyObject returns
    CKR_ATTRIBUTE_READ_ONLY and makes no object."""
    home = logged_in(raw)
    label = unique("protected")
    if change == "CKA_SENSITIVE-to-false":
        original, template = {"sensitive": True}, {ck.CKA_SENSITIVE: False}
    else:
        original, template = ({"sensitive": False, "extractable": False},
                              {ck.CKA_EXTRACTABLE: True})
    key = raw.create_object(home, aes_key(label, bytes(16), **original))
    expect_code("attribute-read-only", "C_CopyObject", raw.copy_object, home, key, template,
                what=f"C_CopyObject with {change.replace('-', ' ')}")
    found = find(raw, home, {ck.CKA_LABEL: label})
    assert found == {key}, (
        f"a refused C_CopyObject must not create an object: {len(found) - 1} copies found")
