"""`pkcs11-conformance probe`: what a module says about itself, and a draft vendor file.

The module is loaded in this process through the ctypes layer (raw.py), never through
python-pkcs11. The report lists C_GetInfo, the slots and tokens (each with the PKCS#11
URI naming it) and every advertised mechanism with its C_GetMechanismInfo, and flags
mechanism information that contradicts the specification: flags that do not fit the
mechanism's kind (the table in mechanism_kinds.py, shared with the `mechanisms` area),
empty or inverted key size ranges, mechanisms without any function flag.

The draft vendor file loads as it is and claims nothing: every advertised mechanism and
every function is a comment the vendor uncomments, one conscious claim at a time.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, modules, names
from . import raw as ck
from .loading import _ID, ConfigError, available_profiles
from .mechanism_kinds import (
    BYTES,
    CURVE_BITS,
    FUNCTION_MASK,
    KEY_SIZE_UNITS,
    KINDS,
    SIZED,
    flag_names,
)
from .uri import PKCS11URI, URIError, is_uri, parse, token_uri

# CK_MECHANISM_INFO flags as the report and the draft name them (v2.40 base §3.5, v3.0).
MECHANISM_FLAGS: tuple[tuple[str, int], ...] = (
    ("hw", ck.CKF_HW), ("encrypt", ck.CKF_ENCRYPT), ("decrypt", ck.CKF_DECRYPT),
    ("digest", ck.CKF_DIGEST), ("sign", ck.CKF_SIGN), ("sign_recover", ck.CKF_SIGN_RECOVER),
    ("verify", ck.CKF_VERIFY), ("verify_recover", ck.CKF_VERIFY_RECOVER),
    ("generate", ck.CKF_GENERATE), ("generate_key_pair", ck.CKF_GENERATE_KEY_PAIR),
    ("wrap", ck.CKF_WRAP), ("unwrap", ck.CKF_UNWRAP), ("derive", ck.CKF_DERIVE),
    ("message_encrypt", ck.CKF_MESSAGE_ENCRYPT), ("message_decrypt", ck.CKF_MESSAGE_DECRYPT),
    ("message_sign", ck.CKF_MESSAGE_SIGN), ("message_verify", ck.CKF_MESSAGE_VERIFY),
    ("multi_message", ck.CKF_MULTI_MESSAGE), ("find_objects", ck.CKF_FIND_OBJECTS),
    ("ec_f_p", ck.CKF_EC_F_P), ("ec_f_2m", ck.CKF_EC_F_2M),
    ("ec_ecparameters", ck.CKF_EC_ECPARAMETERS), ("ec_oid", ck.CKF_EC_OID),
    ("ec_uncompress", ck.CKF_EC_UNCOMPRESS), ("ec_compress", ck.CKF_EC_COMPRESS),
    ("ec_curvename", ck.CKF_EC_CURVENAME), ("extension", ck.CKF_EXTENSION),
)
# Flags that say a mechanism serves some function (v2.40 functions and 3.x messages).
SERVES = FUNCTION_MASK | ck.CKF_MESSAGE_ENCRYPT | ck.CKF_MESSAGE_DECRYPT \
    | ck.CKF_MESSAGE_SIGN | ck.CKF_MESSAGE_VERIFY
TOKEN_FLAGS: tuple[tuple[str, int], ...] = (
    ("initialized", ck.CKF_TOKEN_INITIALIZED), ("login required", ck.CKF_LOGIN_REQUIRED),
    ("user PIN initialized", ck.CKF_USER_PIN_INITIALIZED),
    ("protected authentication path", ck.CKF_PROTECTED_AUTHENTICATION_PATH),
    ("write protected", ck.CKF_WRITE_PROTECTED), ("RNG", ck.CKF_RNG),
    ("user PIN locked", ck.CKF_USER_PIN_LOCKED), ("SO PIN locked", ck.CKF_SO_PIN_LOCKED),
    ("error state", ck.CKF_ERROR_STATE),
)

_BY_VALUE: dict[int, str] = {int(m): n for n, m in names.MECHANISMS.items()
                             if int(m) != 0x80000000}
_HASH_BITS = {"MD5": 128, "SHA_1": 160, "SHA1": 160, "SHA224": 224, "SHA256": 256, "SHA384": 384,
              "SHA512": 512, "SHA3_224": 224, "SHA3_256": 256, "SHA3_384": 384,
              "SHA3_512": 512}


@dataclass
class Mechanism:
    """One entry of C_GetMechanismList with its information and what looks wrong."""

    value: int
    name: str | None
    info: ck.MechanismInfo | None
    error: str | None = None
    suspicious: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.value >= 0x80000000:
            return f"CKM_VENDOR_DEFINED+0x{self.value - 0x80000000:X}"
        return f"0x{self.value:08X}"


@dataclass
class Probed:
    path: str
    init_reserved: str | None
    info: ck.Info
    function_list_version: tuple[int, int]
    null_functions: list[str]
    interfaces: bool
    slots: list[tuple[int, ck.SlotInfo, ck.TokenInfo | None]]
    slot: int
    token: ck.TokenInfo
    mechanisms: list[Mechanism]


# --- what the module says ----------------------------------------------------------------


def _fail(where: str, problem: str) -> ConfigError:
    return ConfigError(where, "", problem)


def module_path(module: str | None, token: PKCS11URI | None) -> str:
    """--module (a path or a p11-kit name), else the module-path or module-name of a
    --token URI."""
    try:
        if module:
            return modules.resolve(module)
        if token is not None and token.module_path:
            return modules.resolve(token.module_path)
        if token is not None and token.module_name:
            return modules.resolve(token.module_name)
    except modules.ModuleNotFound as exc:
        raise _fail("--module" if module else "--token", str(exc)) from None
    raise _fail("--module", "give the module to probe (a path, or a name from "
                "`pkcs11-conformance modules`)")


def token_query(token: str | None) -> PKCS11URI | None:
    """--token as a URI (a label is matched as such, not parsed)."""
    if token is None or not is_uri(token):
        return None
    try:
        query = parse(token)
    except URIError as exc:
        raise _fail("--token", str(exc)) from None
    if query.names_object():
        raise _fail("--token", "the URI names an object (object, type or id); a token URI "
                    "names only the token")
    return query


def read(path: str, token: str | None, init_reserved: str | None = None) -> Probed:
    """Load the module in this process and read everything the report and draft need."""
    try:
        module = ck.Module(path, init_reserved)
    except (ck.ModuleLoadError, ck.CKRError) as exc:
        raise _fail("--module", f"{exc}") from None
    try:
        module.initialize()
    except ck.CKRError as exc:
        raise _fail("--module", f"{path}: C_Initialize returned {exc.name} (is the module's "
                    "own configuration in place? SoftHSM2 reads SOFTHSM2_CONF; NSS softokn "
                    "needs --init-reserved)") from None
    try:
        return _read(module, path, init_reserved, token)
    finally:
        with contextlib.suppress(ck.CKRError):
            module.finalize()


def _read(module: ck.Module, path: str, init_reserved: str | None,
          token: str | None) -> Probed:
    info = module.get_info()
    slots: list[tuple[int, ck.SlotInfo, ck.TokenInfo | None]] = []
    for slot in module.get_slot_list(False):
        slot_info = module.get_slot_info(slot)
        token_info = None
        if slot_info.flags & ck.CKF_TOKEN_PRESENT:
            try:
                token_info = module.get_token_info(slot)
            except ck.CKRError:
                token_info = None
        slots.append((slot, slot_info, token_info))
    slot, chosen = _choose(slots, token, info)
    return Probed(path, init_reserved, info, module.function_list_version, module.null_functions(),
                  module.exports("C_GetInterfaceList"), slots, slot, chosen,
                  _mechanisms(module, slot))


def _uri_of(token: ck.TokenInfo) -> str:
    return token_uri(token.label, token.manufacturer_id, token.serial_number, token.model)


def _choose(slots: list[tuple[int, ck.SlotInfo, ck.TokenInfo | None]], token: str | None,
            info: ck.Info) -> tuple[int, ck.TokenInfo]:
    present = [(slot, t) for slot, _, t in slots if t is not None]
    listed = ", ".join(_uri_of(t) for _, t in present) or "none"
    if token is None:
        found = [(s, t) for s, t in present if t.flags & ck.CKF_TOKEN_INITIALIZED]
        if len(found) == 1:
            return found[0]
        problem = ("no initialized token in any slot" if not found else
                   f"{len(found)} initialized tokens; choose one with --token LABEL or URI")
        raise _fail("--token", f"{problem} (tokens present: {listed})")
    query = token_query(token)
    if query is None:
        found = [(s, t) for s, t in present if t.label == token]
        wanted = f"labelled {token!r}"
    else:
        library = query.matches_library(info.manufacturer_id, info.library_description,
                                        info.library_version)
        found = [(s, t) for s, t in present if library and query.matches_token(
            t.label, t.manufacturer_id, t.serial_number, t.model, s)]
        wanted = f"matching {token!r}"
    if len(found) == 1:
        return found[0]
    if found:
        raise _fail("--token", f"{len(found)} tokens {wanted}; give a URI with the serial "
                    f"(tokens present: {listed})")
    raise _fail("--token", f"no token {wanted} (tokens present: {listed})")


def _mechanisms(module: ck.Module, slot: int) -> list[Mechanism]:
    try:
        values = module.get_mechanism_list(slot)
    except ck.CKRError as exc:
        error = f"C_GetMechanismList returned {exc.name}"
        return [Mechanism(0, None, None, error, [error])]
    out, seen = [], set()
    for value in values:
        try:
            mech = Mechanism(value, _BY_VALUE.get(value), module.get_mechanism_info(slot, value))
        except ck.CKRError as exc:
            mech = Mechanism(value, _BY_VALUE.get(value), None,
                             f"C_GetMechanismInfo returned {exc.name}")
        if value in seen:
            mech.suspicious.append("listed twice by C_GetMechanismList")
        seen.add(value)
        mech.suspicious += suspicious(mech)
        out.append(mech)
    return sorted(out, key=lambda m: (m.name is None, m.label))


# --- judging mechanism information -------------------------------------------------------


def unit(name: str) -> str | None:
    """bits or bytes where the spec says (or, for HMAC and the other AES modes, where
    modules agree on it); None where the key size fields mean nothing fixed."""
    if name in KEY_SIZE_UNITS:
        return KEY_SIZE_UNITS[name]
    if name.startswith(("CKM_EC", "CKM_EDDSA", "CKM_XEDDSA")):
        return "bits"
    if name.startswith("CKM_AES_") or name.endswith("_HMAC"):
        return "bytes"
    return None


def suspicious(mech: Mechanism) -> list[str]:
    """What in a mechanism's information contradicts the specification."""
    if mech.error:
        return [mech.error]
    info, name = mech.info, mech.name
    assert info is not None
    found = []
    if not info.flags & SERVES:
        found.append(f"no function flag (flags {info.flags:#x}): it serves no function")
    kind = KINDS.get(name or "")
    if kind is not None and info.flags & FUNCTION_MASK:  # (3.x message flags only: no kind)
        if not any(info.flags & need == need for need in kind.needs):
            expected = " or ".join(flag_names(need) for need in kind.needs)
            found.append(f"lacks {expected} for a {kind.what} mechanism")
        extra = info.flags & FUNCTION_MASK & ~kind.allows
        if extra:
            found.append(f"{flag_names(extra)} contradicts a {kind.what} mechanism")
    if info.min_key_size > info.max_key_size:
        found.append(f"inverted key size range {info.min_key_size}..{info.max_key_size}")
    elif name in SIZED and info.max_key_size == 0:
        found.append("empty key size range 0..0")
    elif name in KEY_SIZE_UNITS and KEY_SIZE_UNITS[name] == BYTES and info.max_key_size >= 128:
        found.append(f"key size range {info.min_key_size}..{info.max_key_size} looks like "
                     "bits; AES key sizes count in bytes")
    return found


def _in_range(bits: Iterable[int], info: ck.MechanismInfo, in_bytes: bool) -> list[int]:
    if info.max_key_size == 0 or info.min_key_size > info.max_key_size:
        return list(bits)  # nothing usable advertised: offer the usual sizes
    return [b for b in bits
            if info.min_key_size <= (b // 8 if in_bytes else b) <= info.max_key_size]


def suggestion(mech: Mechanism) -> dict[str, list[object]]:
    """Claim parameters that fit the advertised information: a starting point for the
    vendor to verify and narrow, never a claim by itself."""
    name, info = mech.name or "", mech.info
    if info is None or (info.max_key_size == 0 and name not in SIZED
                        and not name.startswith(("CKM_EC", "CKM_EDDSA"))):
        return {}  # no key sizes advertised, and none the spec asks for
    hashed = name.removeprefix("CKM_").split("_RSA_")[0].split("_HMAC")[0]
    out: dict[str, list[object]] = {}
    if "RSA" in name:
        out["key_sizes"] = list(_in_range((1024, 2048, 3072, 4096), info, False))
        if name == "CKM_RSA_PKCS_KEY_PAIR_GEN":
            out["public_exponents"] = [65537]
        elif name == "CKM_RSA_PKCS_PSS":
            out["hashes"], out["salt_lengths"] = ["sha256"], [32]
        elif name.endswith("_PSS") and hashed in _HASH_BITS:
            out["salt_lengths"] = [_HASH_BITS[hashed] // 8]
        elif name == "CKM_RSA_PKCS_OAEP":
            out["hashes"], out["labels"] = ["sha256"], [False]
    elif name.startswith(("CKM_DSA", "CKM_DH")):
        out["key_sizes"] = list(_in_range((1024, 2048, 3072), info, False))
    elif name == "CKM_GENERIC_SECRET_KEY_GEN":
        out["key_sizes"] = list(_in_range((128, 256, 512), info, False))
    elif name.endswith("_HMAC") and hashed in _HASH_BITS:
        least = _HASH_BITS[hashed]  # shorter HMAC keys are weak, and often refused
        sizes = sorted(s for s in {least, 256, 512, 1024} if s >= least)
        out["key_sizes"] = list(_in_range(sizes, info, True))
    elif name.startswith("CKM_AES_"):
        looks_like_bits = info.min_key_size >= 64  # an AES key has 16 to 32 bytes
        out["key_sizes"] = list(_in_range((128, 192, 256), info, not looks_like_bits))
        if name == "CKM_AES_GCM":
            out["tag_bits"] = [128]
    elif name.startswith(("CKM_EC", "CKM_EDDSA")):
        family: tuple[str, ...]
        if "EDWARDS" in name or name == "CKM_EDDSA":
            family = ("ed25519", "ed448")
        elif "MONTGOMERY" in name:
            family = ("x25519", "x448")
        else:
            family = tuple(c for c in names.CURVES if not c.startswith(("ed", "x")))
        curves = [c for c in family if info.max_key_size == 0 or any(
            info.min_key_size <= b <= info.max_key_size for b in CURVE_BITS[c])]
        out["curves"] = list(curves or family)
    return {k: v for k, v in out.items() if v}


def describe(mech: Mechanism) -> str:
    """'16..32 bytes; encrypt decrypt' for the report and the draft's comments."""
    if mech.info is None:
        return mech.error or "no information"
    info = mech.info
    size_unit = unit(mech.label)
    if info.min_key_size == info.max_key_size == 0:
        sizes = "no key sizes"
    else:
        sizes = f"{info.min_key_size}..{info.max_key_size}" + (
            f" {size_unit}" if size_unit else " (unit not fixed by the spec)")
    flags = [n for n, bit in MECHANISM_FLAGS if info.flags & bit]
    rest = info.flags & ~sum(bit for _, bit in MECHANISM_FLAGS)
    if rest:
        flags.append(f"{rest:#x}")
    return f"{sizes}; {' '.join(flags) or 'no flags'}"


# --- the report and the draft ------------------------------------------------------------


def _v(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def report(probed: Probed) -> str:
    info = probed.info
    lines = [
        f"Module: {probed.path}",
        f"  C_GetInfo: Cryptoki {_v(info.cryptoki_version)}, {info.manufacturer_id!r} "
        f"{info.library_description!r} version {_v(info.library_version)}, "
        f"flags {info.flags:#x}",
        f"  function list: version {_v(probed.function_list_version)}; NULL entries: "
        + (", ".join(probed.null_functions) or "none")
        + ("" if not probed.null_functions else " (the spec requires a stub for each)"),
        "  PKCS#11 3.x interfaces: " + ("C_GetInterfaceList exported" if probed.interfaces
                                        else "none (no C_GetInterfaceList)"),
        f"Slots: {len(probed.slots)}",
    ]
    for slot, slot_info, token in probed.slots:
        lines.append(f"  slot {slot}: {slot_info.slot_description!r} "
                     f"({slot_info.manufacturer_id})" + ("" if token else ", no token"))
        if token is not None:
            flags = [n for n, bit in TOKEN_FLAGS if token.flags & bit]
            lines.append(f"    token {token.label!r}: {token.manufacturer_id} {token.model}, "
                         f"serial {token.serial_number}; {', '.join(flags) or 'no flags'}")
            lines.append(f"    {_uri_of(token)}")
    lines.append(f"Probed token: {probed.token.label!r} in slot {probed.slot}")
    lines.append(f"Mechanisms advertised: {len(probed.mechanisms)}")
    width = max((len(m.label) for m in probed.mechanisms), default=0)
    lines += [f"  {m.label:<{width}}  {describe(m)}" for m in probed.mechanisms]
    odd = [m for m in probed.mechanisms if m.suspicious]
    lines.append(f"Suspicious mechanism information: {len(odd)}")
    lines += [f"  {m.label}: {'; '.join(m.suspicious)}" for m in odd]
    return "\n".join(lines)


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text)


def _flow(values: dict[str, list[object]]) -> str:
    def one(value: object) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    return "{" + ", ".join(f"{k}: [{', '.join(one(v) for v in vs)}]"
                           for k, vs in values.items()) + "}"


def default_id(probed: Probed) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", probed.info.manufacturer_id.lower()).strip("-")
    return slug or "my-module"


def draft(probed: Probed, vendor_id: str) -> str:
    info, token = probed.info, probed.token
    pin_env = re.sub(r"[^A-Z0-9]+", "_", vendor_id.upper()) + "_USER_PIN"
    if pin_env[0].isdigit():
        pin_env = "PKCS11_" + pin_env
    today = datetime.date.today().isoformat()
    title = " ".join(filter(None, (info.manufacturer_id, info.library_description)))
    lines = [
        f"# Draft vendor declaration written by `pkcs11-conformance probe` "
        f"({__version__}) on {today}",
        f"#   module: {probed.path}: Cryptoki {_v(info.cryptoki_version)}, "
        f"{info.manufacturer_id} {info.library_description} {_v(info.library_version)}",
        f"#   token:  {token.label!r} ({token.manufacturer_id} {token.model}, serial "
        f"{token.serial_number}) in slot {probed.slot}",
        "#",
        "# It loads as it is and claims nothing. Before a run:",
        "#   1. Edit the lines marked EDIT.",
        "#   2. Claim only what you have verified: uncomment lines under `functions:` and",
        "#      `claims:` one by one and narrow their values. The values are suggestions",
        "#      from what the module advertises (C_GetMechanismInfo), not evidence.",
        "#   3. SUSPICIOUS marks mechanism information that contradicts the specification.",
        "schema: 1",
        f"vendor: {vendor_id}",
        f"title: {_q(title or vendor_id)}    # EDIT: the product's name",
        "module:",
        f"  path: {_q(probed.path)}",
        *([f"  init_reserved: {_q(probed.init_reserved)}    # C_Initialize pReserved"]
          if probed.init_reserved is not None else []),
        f"  expect_library_version: \"{_v(info.library_version)}\"    # from C_GetInfo",
        "token:",
        f"  uri: {_q(_uri_of(token))}",
        f"  # label: {_q(token.label)}    # or by label: exactly one of uri and label",
        f"  user_pin_env: {pin_env}    # EDIT: the variable that holds the user PIN",
        "  # so_pin_env: ...",
        "  # provision: softhsm2    # only for a throwaway token the suite may create",
        f"profiles: []    # EDIT: e.g. [baseline-provider] "
        f"(known: {', '.join(available_profiles()) or 'none'})",
        "# timeout_seconds: 300",
        "functions:",
    ]
    null = set(probed.null_functions)
    for function in ck.FUNCTION_NAMES:
        note = "    # NULL in the function list: cannot work" if function in null else ""
        lines.append(f"  # - {function}{note}")
    later = sorted(names.FUNCTIONS - set(ck.FUNCTION_NAMES))
    if probed.interfaces:
        lines += [f"  # - {function}    # PKCS#11 3.x" for function in later]
    else:
        lines.append(f"  # ({len(later)} PKCS#11 3.x functions left out: the module exports "
                     "no C_GetInterfaceList)")
    lines.append("claims:")
    for mech in probed.mechanisms:
        comment = f"advertised: {describe(mech)}"
        if mech.suspicious:
            comment += f"; SUSPICIOUS: {'; '.join(mech.suspicious)}"
        if mech.name is None:
            lines.append(f"  # {mech.label}: not claimable (no spec name known to this "
                         f"suite)    # {comment}")
        else:
            lines.append(f"  # {mech.name}: {_flow(suggestion(mech))}    # {comment}")
    lines += [
        "known_deviations: []",
        "#  - test: \"area/test_file.py::test_name[*]\"    # a case id; * and ? are wildcards",
        "#    url: https://bugs.example.com/1234",
        "#    reason: one line saying what differs",
    ]
    return "\n".join(lines) + "\n"


def output_id(output: Path) -> str:
    """The vendor id a draft written to `output` must carry (the file stem)."""
    if output.suffix not in (".yaml", ".yml") or not _ID.match(output.stem):
        raise _fail("-o", f"{str(output)!r}: name the draft <vendor-id>.yaml with a "
                    "kebab-case id (the vendor id equals the file name), e.g. acme-hsm.yaml")
    if output.exists():
        raise _fail("-o", f"{str(output)!r} exists; it may hold your edits, so it is not "
                    "overwritten (remove it or choose another name)")
    if not output.parent.is_dir():
        raise _fail("-o", f"directory {str(output.parent)!r} does not exist")
    if not os.access(output.parent, os.W_OK):  # told before the module is loaded
        raise _fail("-o", f"directory {str(output.parent)!r} is not writable")
    return output.stem


def run(module: str | None, token: str | None, output: str | None,
        init_reserved: str | None = None) -> tuple[str, str | None]:
    """(the report, the draft or None). `output` "-" asks for the draft on stdout."""
    vendor_id = output_id(Path(output)) if output and output != "-" else None
    query = token_query(token)
    path = module_path(module, query)
    if query is not None and module:
        mismatch = modules.uri_module_mismatch(query, path)
        if mismatch:
            raise _fail("--token", mismatch)
    probed = read(path, token, init_reserved)
    if output is None:
        return report(probed), None
    return report(probed), draft(probed, vendor_id or default_id(probed))
