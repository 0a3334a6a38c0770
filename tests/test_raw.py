"""Tests of conformance.raw, the ctypes layer, against a real SoftHSM2 token.

Every test gets a throwaway token in its own tmp_path. The PKCS#11 calls run in a
spawned child process (the functions prefixed ``_child_``): a module is initialized
once per process, must never share a process with python-pkcs11 loading the same
module, and may crash; the child returns plain data and the assertions are made here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import multiprocessing
import pickle
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import SOFTHSM2, private_softhsm2

from conformance import raw

LABEL = "raw-layer"
USER_PIN = b"1234"
SO_PIN = b"12345678"
CHILD_TIMEOUT = 60  # seconds; a hung module fails the test instead of the run

T = TypeVar("T")
Runner = Callable[..., Any]


@dataclass(frozen=True)
class Token:
    module: str
    label: str
    user_pin: bytes
    so_pin: bytes


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Token:
    """A fresh SoftHSM2 token in tmp_path; SOFTHSM2_CONF is set before any load."""
    private_softhsm2(tmp_path, monkeypatch)
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            LABEL,
            "--so-pin",
            SO_PIN.decode(),
            "--pin",
            USER_PIN.decode(),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return Token(SOFTHSM2, LABEL, USER_PIN, SO_PIN)


@pytest.fixture
def child(token: Token) -> Iterator[Runner]:
    """Runs a module-level function in a fresh spawned process (which inherits the
    token's SOFTHSM2_CONF) and returns its result or re-raises its exception."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:

        def run(function: Callable[..., T], *args: Any) -> T:
            return pool.submit(function, *args).result(timeout=CHILD_TIMEOUT)

        yield run


def _initialized(token: Token, **init: Any) -> tuple[raw.Module, int]:
    module = raw.Module(token.module)
    module.initialize(**init)
    return module, module.find_slot(token.label)


# --- functions run in the child process ------------------------------------------------


def _child_info(token: Token) -> tuple[raw.Info, raw.TokenInfo, list[int], list[int]]:
    module, slot = _initialized(token)
    try:
        return (
            module.get_info(),
            module.get_token_info(slot),
            module.get_slot_list(True),
            module.get_slot_list(False),
        )
    finally:
        module.finalize()


def _child_mechanisms(token: Token) -> tuple[list[int], raw.MechanismInfo]:
    module, slot = _initialized(token)
    try:
        return module.get_mechanism_list(slot), module.get_mechanism_info(slot, raw.CKM_SHA256)
    finally:
        module.finalize()


def _child_sessions(token: Token) -> dict[str, Any]:
    module, slot = _initialized(token)
    try:
        seen: dict[str, Any] = {}
        h = module.open_session(slot, raw.CKF_SERIAL_SESSION)
        seen["info"] = module.get_session_info(h)
        module.close_session(h)
        try:
            module.get_session_info(h)
        except raw.CKRError as exc:
            seen["after_close"] = exc
        a = module.open_session(slot, raw.CKF_SERIAL_SESSION)
        b = module.open_session(slot, raw.CKF_SERIAL_SESSION | raw.CKF_RW_SESSION)
        module.close_all_sessions(slot)
        seen["after_close_all"] = [
            module.call("C_GetSessionInfo", x, ctypes.byref(raw.CK_SESSION_INFO())) for x in (a, b)
        ]
        seen["no_serial_flag"] = module.call(
            "C_OpenSession", slot, 0, None, None, ctypes.byref(raw.CK_ULONG())
        )
        return seen
    finally:
        module.finalize()


def _child_session_states(token: Token) -> list[tuple[str, int, int]]:
    """(step, state of the RO session, state of the RW session) along a login cycle."""
    module, slot = _initialized(token)
    try:
        ro = module.open_session(slot, raw.CKF_SERIAL_SESSION)
        rw = module.open_session(slot, raw.CKF_SERIAL_SESSION | raw.CKF_RW_SESSION)

        def states(step: str) -> tuple[str, int, int]:
            return (step, module.get_session_info(ro).state, module.get_session_info(rw).state)

        steps = [states("public")]
        module.login(ro, raw.CKU_USER, token.user_pin)
        steps.append(states("user"))
        module.logout(rw)  # login state is per application, any session may log out
        steps.append(states("logged out"))
        module.close_session(ro)  # an SO login needs no read-only session open
        module.login(rw, raw.CKU_SO, token.so_pin)
        so_state = module.get_session_info(rw).state
        module.logout(rw)
        steps.append(("so", -1, so_state))
        return steps
    finally:
        module.finalize()


def _child_wrong_pin(token: Token) -> raw.CKRError | None:
    module, slot = _initialized(token)
    try:
        h = module.open_session(slot, raw.CKF_SERIAL_SESSION)
        try:
            module.login(h, raw.CKU_USER, token.user_pin + b"-wrong")
        except raw.CKRError as exc:
            return exc  # one wrong attempt only: never run a real token into a lockout
        return None
    finally:
        module.finalize()


def _child_random(token: Token) -> list[bytes]:
    module, slot = _initialized(token)
    try:
        h = module.open_session(slot, raw.CKF_SERIAL_SESSION)
        module.seed_random(h, b"additional seed material")
        return [module.generate_random(h, n) for n in (1, 32, 32, 1000)]
    finally:
        module.finalize()


def _child_digest(token: Token, message: bytes, chunks: list[bytes]) -> dict[str, Any]:
    module, slot = _initialized(token)
    try:
        h = module.open_session(slot, raw.CKF_SERIAL_SESSION)
        out: dict[str, Any] = {}
        module.digest_init(h, raw.CKM_SHA256)
        out["single"] = module.digest(h, message)
        module.digest_init(h, raw.CKM_SHA256)
        for chunk in chunks:
            module.digest_update(h, chunk)
        out["multi"] = module.digest_final(h)
        # A too-small output buffer: CKR_BUFFER_TOO_SMALL, the needed length, and the
        # operation still active (PKCS#11 v2.40 §5.2 on output buffers).
        module.digest_init(h, raw.CKM_SHA256)
        length = raw.CK_ULONG(1)
        small = ctypes.create_string_buffer(1)
        out["too_small"] = module.call(
            "C_Digest", h, message, len(message), small, ctypes.byref(length)
        )
        out["needed"] = length.value
        out["then"] = module.digest(h, message)
        out["not_initialized"] = module.call("C_DigestUpdate", h, b"x", 1)
        return out
    finally:
        module.finalize()


# Mechanism types these tests use (pkcs11t.h).
CKM_AES_ECB, CKM_AES_CBC, CKM_AES_GCM, CKM_AES_KEY_WRAP = 0x1081, 0x1082, 0x1087, 0x2109
CKM_AES_ECB_ENCRYPT_DATA = 0x1104
AES_KEY = bytes(range(16))
SECRET = {raw.CKA_CLASS: raw.CKO_SECRET_KEY, raw.CKA_TOKEN: False}


def _child_mechanism_info_fill(token: Token) -> dict[str, raw.MechanismInfo]:
    module, slot = _initialized(token)
    try:
        return {"sha256": module.get_mechanism_info(slot, raw.CKM_SHA256, raw.PATTERN_BYTE),
                "aes_ecb": module.get_mechanism_info(slot, CKM_AES_ECB, raw.PATTERN_BYTE),
                "aes_ecb_zeroed": module.get_mechanism_info(slot, CKM_AES_ECB)}
    finally:
        module.finalize()


def _encrypt(module: raw.Module, h: int, data: bytes) -> bytes:
    buffer, length = ctypes.create_string_buffer(256), raw.CK_ULONG(256)
    rv = module.call("C_Encrypt", h, data, len(data), buffer, ctypes.byref(length))
    if rv != raw.CKR_OK:
        raise raw.CKRError("C_Encrypt", rv)
    return buffer.raw[: length.value]


def _child_parameters(token: Token, data: bytes) -> dict[str, Any]:
    """AES with parameters given as bytes (a CBC IV) and as a structure (CK_GCM_PARAMS,
    CK_KEY_DERIVATION_STRING_DATA), wrapping and unwrapping, and derivation."""
    module, slot = _initialized(token)
    try:
        h = module.open_session(slot, raw.CKF_SERIAL_SESSION | raw.CKF_RW_SESSION)
        module.login(h, raw.CKU_USER, token.user_pin)
        key = module.create_object(h, {
            **SECRET, raw.CKA_KEY_TYPE: raw.CKK_AES, raw.CKA_VALUE: AES_KEY,
            raw.CKA_ENCRYPT: True, raw.CKA_WRAP: True, raw.CKA_UNWRAP: True,
            raw.CKA_DERIVE: True, raw.CKA_EXTRACTABLE: True, raw.CKA_SENSITIVE: False})
        out: dict[str, Any] = {}
        module.operation_init(h, "C_EncryptInit", CKM_AES_CBC, key, bytes(range(16)))
        out["cbc"] = _encrypt(module, h, data)
        module.operation_init(h, "C_EncryptInit", CKM_AES_GCM, key,
                              (bytes(range(12)), 12, 96, b"aad", 3, 128))
        out["gcm"] = _encrypt(module, h, data)
        out["wrapped"] = module.wrap_key_with(h, CKM_AES_KEY_WRAP, key, key)
        unwrapped = module.unwrap_key(h, CKM_AES_KEY_WRAP, key, out["wrapped"], {
            **SECRET, raw.CKA_KEY_TYPE: raw.CKK_AES, raw.CKA_EXTRACTABLE: True,
            raw.CKA_SENSITIVE: False})
        derived = module.derive_key(h, CKM_AES_ECB_ENCRYPT_DATA, key, {
            **SECRET, raw.CKA_KEY_TYPE: raw.CKK_GENERIC_SECRET, raw.CKA_VALUE_LEN: 16,
            raw.CKA_EXTRACTABLE: True, raw.CKA_SENSITIVE: False}, (data[:16], 16))
        for name, handle in (("unwrapped", unwrapped), ("derived", derived)):
            out[name] = module.get_attribute_values(h, handle, [raw.CKA_VALUE])[1][0][2]
        return out
    finally:
        module.finalize()


def _child_initialization(token: Token) -> dict[str, Any]:
    module = raw.Module(token.module)
    out: dict[str, Any] = {}
    out["get_info_first"] = module.call("C_GetInfo", ctypes.byref(raw.CK_INFO()))
    try:
        module.get_info()
    except raw.CKRError as exc:
        out["get_info_first_error"] = exc
    out["function_list_version"] = module.function_list_version
    module.initialize(flags=raw.CKF_OS_LOCKING_OK)
    out["again"] = module.call("C_Initialize", None)
    module.finalize()
    out["finalize_again"] = module.call("C_Finalize", None)
    module.initialize()  # a second initialization after C_Finalize works
    out["info_after_reinit"] = module.get_info()
    module.finalize()
    try:
        module.initialize(reserved=b"some-config")
    except raw.CKRError as exc:
        out["reserved"] = exc
    else:
        module.finalize()
    return out


# --- the tests ---------------------------------------------------------------------------


def test_get_info_reports_softhsm_fields(child: Runner, token: Token) -> None:
    info, _, _, _ = child(_child_info, token)
    assert info.manufacturer_id == "SoftHSM"
    assert info.library_version[0] == 2
    assert info.cryptoki_version >= (2, 40)
    assert info.flags == 0
    assert info.library_description and not info.library_description.endswith(" ")


def test_token_found_by_label_with_initialized_flags(child: Runner, token: Token) -> None:
    _, token_info, present, all_slots = child(_child_info, token)
    assert token_info.label == token.label
    assert set(present) <= set(all_slots)
    wanted = (
        raw.CKF_TOKEN_INITIALIZED
        | raw.CKF_USER_PIN_INITIALIZED
        | raw.CKF_LOGIN_REQUIRED
        | raw.CKF_RNG
    )
    assert token_info.flags & wanted == wanted
    assert token_info.min_pin_len <= len(token.user_pin) <= token_info.max_pin_len


def test_mechanism_list_and_info_advertise_sha256_digest(child: Runner, token: Token) -> None:
    mechanisms, sha256 = child(_child_mechanisms, token)
    assert raw.CKM_SHA256 in mechanisms
    assert sha256.flags & raw.CKF_DIGEST


def test_mechanism_info_is_read_into_a_pattern(child: Runner, token: Token) -> None:
    """The structure is filled with PATTERN_BYTE before the call, so a field the module
    leaves alone shows; SoftHSM2 2.6.1 ORs the AES ECB flags into the caller's bytes."""
    info = child(_child_mechanism_info_fill, token)
    assert info["sha256"].flags == raw.CKF_DIGEST
    assert info["aes_ecb"].flags == raw.UNSET | raw.CKF_ENCRYPT | raw.CKF_DECRYPT
    assert info["aes_ecb_zeroed"].flags == raw.CKF_ENCRYPT | raw.CKF_DECRYPT


def test_mechanism_parameter_layout() -> None:
    """A tuple is a structure of CK_ULONGs and pointers laid out as the header's (here
    CK_GCM_PARAMS), bytes inside it point to a copy, None is NULL."""

    class GCM(ctypes.Structure):
        _fields_ = [("pIv", ctypes.c_void_p), ("ulIvLen", ctypes.c_ulong),
                    ("ulIvBits", ctypes.c_ulong), ("pAAD", ctypes.c_void_p),
                    ("ulAADLen", ctypes.c_ulong), ("ulTagBits", ctypes.c_ulong)]

    pointer, length, keep = raw.mechanism_parameter((b"iv", 2, 16, None, 0, 128))
    assert length == ctypes.sizeof(GCM)
    gcm = GCM.from_address(pointer)
    assert ctypes.string_at(gcm.pIv, 2) == b"iv"
    assert (gcm.ulIvLen, gcm.ulIvBits, gcm.pAAD, gcm.ulAADLen, gcm.ulTagBits) == (
        2, 16, None, 0, 128)
    assert keep
    pointer, length, _ = raw.mechanism_parameter(b"0123")
    assert (ctypes.string_at(pointer, length), length) == (b"0123", 4)
    assert raw.mechanism_parameter(None)[:2] == (None, 0)
    assert len(raw.ulong_bytes(1)) == ctypes.sizeof(ctypes.c_ulong)
    assert len(raw.inline_zeros(16)) * ctypes.sizeof(ctypes.c_ulong) == 16


def test_parameters_reach_the_module(child: Runner, token: Token) -> None:
    """Results an independent implementation computes from the same parameters."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap

    data = bytes(range(32))
    out = child(_child_parameters, token, data)
    cbc = Cipher(algorithms.AES(AES_KEY), modes.CBC(bytes(range(16)))).encryptor()
    assert out["cbc"] == cbc.update(data) + cbc.finalize()
    assert out["gcm"] == AESGCM(AES_KEY).encrypt(bytes(range(12)), data, b"aad")
    assert out["wrapped"] == aes_key_wrap(AES_KEY, AES_KEY)
    assert out["unwrapped"] == AES_KEY
    ecb = Cipher(algorithms.AES(AES_KEY), modes.ECB()).encryptor()
    assert out["derived"] == ecb.update(data[:16]) + ecb.finalize()


def test_open_and_close_session(child: Runner, token: Token) -> None:
    seen = child(_child_sessions, token)
    assert seen["info"].state == raw.CKS_RO_PUBLIC_SESSION
    assert seen["info"].flags & raw.CKF_SERIAL_SESSION
    assert not seen["info"].flags & raw.CKF_RW_SESSION
    assert seen["after_close"].name == "CKR_SESSION_HANDLE_INVALID"
    assert [raw.ckr_name(rv) for rv in seen["after_close_all"]] == [
        "CKR_SESSION_HANDLE_INVALID",
        "CKR_SESSION_HANDLE_INVALID",
    ]
    assert raw.ckr_name(seen["no_serial_flag"]) == "CKR_SESSION_PARALLEL_NOT_SUPPORTED"


def test_session_states_follow_login_and_logout(child: Runner, token: Token) -> None:
    assert child(_child_session_states, token) == [
        ("public", raw.CKS_RO_PUBLIC_SESSION, raw.CKS_RW_PUBLIC_SESSION),
        ("user", raw.CKS_RO_USER_FUNCTIONS, raw.CKS_RW_USER_FUNCTIONS),
        ("logged out", raw.CKS_RO_PUBLIC_SESSION, raw.CKS_RW_PUBLIC_SESSION),
        ("so", -1, raw.CKS_RW_SO_FUNCTIONS),
    ]


def test_wrong_pin_is_reported_as_ckr_pin_incorrect(child: Runner, token: Token) -> None:
    error = child(_child_wrong_pin, token)
    assert isinstance(error, raw.CKRError)
    assert (error.function, error.rv, error.name) == ("C_Login", 0xA0, "CKR_PIN_INCORRECT")
    assert str(error) == "C_Login returned CKR_PIN_INCORRECT"


def test_generate_random_has_requested_length_and_varies(child: Runner, token: Token) -> None:
    outputs = child(_child_random, token)
    assert [len(b) for b in outputs] == [1, 32, 32, 1000]
    assert outputs[1] != outputs[2]
    assert len(set(outputs[3])) > 1


@pytest.mark.parametrize("size", [0, 1, 64, 10_000])
def test_digest_sha256_matches_hashlib(child: Runner, token: Token, size: int) -> None:
    message = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    chunks = [message[i : i + 100] for i in range(0, len(message), 100)] or [b""]
    out = child(_child_digest, token, message, chunks)
    expected = hashlib.sha256(message).digest()
    assert out["single"] == expected
    assert out["multi"] == expected
    assert raw.ckr_name(out["too_small"]) == "CKR_BUFFER_TOO_SMALL"
    assert out["needed"] == 32
    assert out["then"] == expected
    assert raw.ckr_name(out["not_initialized"]) == "CKR_OPERATION_NOT_INITIALIZED"


def test_initialization_order_and_arguments(child: Runner, token: Token) -> None:
    out = child(_child_initialization, token)
    assert raw.ckr_name(out["get_info_first"]) == "CKR_CRYPTOKI_NOT_INITIALIZED"
    assert str(out["get_info_first_error"]) == "C_GetInfo returned CKR_CRYPTOKI_NOT_INITIALIZED"
    assert out["function_list_version"] == (2, 40)
    assert raw.ckr_name(out["again"]) == "CKR_CRYPTOKI_ALREADY_INITIALIZED"
    assert raw.ckr_name(out["finalize_again"]) == "CKR_CRYPTOKI_NOT_INITIALIZED"
    assert out["info_after_reinit"].manufacturer_id == "SoftHSM"
    # v2.40 §5.4: pReserved must be NULL; SoftHSM2 says so, which also shows the
    # CK_C_INITIALIZE_ARGS reached the module.
    assert out["reserved"].name == "CKR_ARGUMENTS_BAD"


# --- no token needed ---------------------------------------------------------------------


def test_missing_library_file_gives_clear_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-pkcs11.so")
    with pytest.raises(raw.ModuleLoadError) as caught:
        raw.Module(missing)
    assert isinstance(caught.value, OSError)
    assert "not found" in str(caught.value) and missing in str(caught.value)


def test_library_without_c_getfunctionlist_is_rejected() -> None:
    libz = ctypes.util.find_library("z")
    if libz is None:
        pytest.skip("no libz to stand in for a non-PKCS#11 library")
    with pytest.raises(raw.ModuleLoadError, match="not a PKCS#11 module"):
        raw.Module(libz)


def test_ckr_names_and_unknown_values() -> None:
    assert raw.ckr_name(0) == "CKR_OK"
    assert raw.ckr_name(0xA0) == "CKR_PIN_INCORRECT"
    assert raw.ckr_name(0x1B8) == "CKR_PIN_TOO_WEAK"
    assert raw.ckr_name(0x201) == "CKR_TOKEN_RESOURCE_EXCEEDED"
    assert raw.ckr_name(0x4) == "0x00000004"
    assert raw.ckr_name(0x80000001) == "0x80000001 (vendor-defined)"
    assert len(set(raw.CKR.values())) == len(raw.CKR)
    assert all(name.startswith("CKR_") for name in raw.CKR.values())


def test_ckr_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(raw.CKRError("C_Sign", 0x68)))
    assert (error.function, error.rv, str(error)) == (
        "C_Sign",
        0x68,
        "C_Sign returned CKR_KEY_FUNCTION_NOT_PERMITTED",
    )


def test_function_list_layout_matches_v240_header() -> None:
    pointer = ctypes.sizeof(ctypes.c_void_p)
    assert len(raw.FUNCTION_NAMES) == 68
    assert raw.FUNCTION_NAMES[0] == "C_Initialize"
    assert raw.FUNCTION_NAMES[-1] == "C_WaitForSlotEvent"
    assert raw.CK_FUNCTION_LIST.C_Initialize.offset == pointer  # CK_VERSION, padded
    assert raw.CK_FUNCTION_LIST.C_GetSessionInfo.offset == pointer * 16
    assert ctypes.sizeof(raw.CK_FUNCTION_LIST) == pointer * 69
