"""PKCS#11 URIs (RFC 7512) that name a token: parsed, checked and matched.

A vendor file may name its token as ``token.uri: "pkcs11:token=...;serial=..."`` instead
of by label, and `pkcs11-conformance probe --token` takes a label or a URI. Matching
follows RFC 7512 §3: every attribute the URI gives must equal the token's (or library's)
value; attributes it leaves out match anything.

This suite takes PINs only from the environment, so a URI carrying a PIN (``pin-value``)
or pointing at one (``pin-source``) is refused rather than silently ignored.
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass

SCHEME = "pkcs11:"
# RFC 7512 §2.3, in the order the grammar lists them, and the field each one fills.
PATH_ATTRIBUTES: dict[str, str] = {
    "token": "token", "manufacturer": "manufacturer", "serial": "serial", "model": "model",
    "library-manufacturer": "library_manufacturer",
    "library-description": "library_description", "library-version": "library_version",
    "object": "object", "type": "type", "id": "id", "slot-id": "slot_id",
}
QUERY_ATTRIBUTES: dict[str, str] = {
    "pin-source": "pin_source", "pin-value": "pin_value", "module-name": "module_name",
    "module-path": "module_path",
}
OBJECT_TYPES = ("cert", "data", "private", "public", "secret-key")
OBJECT_ATTRIBUTES = ("object", "type", "id")

# Characters allowed unencoded in a value: unreserved plus the reserved characters the
# grammar makes available ("&" only in the path, "/" "?" "|" only in the query).
_UNRESERVED = "A-Za-z0-9" + re.escape("._~-")
_RES_AVAIL = re.escape(":[]@!$'()*+,=")
_PATH_VALUE = re.compile(f"[{_UNRESERVED}{_RES_AVAIL}&%]*")
_QUERY_VALUE = re.compile(f"[{_UNRESERVED}{_RES_AVAIL}/?|%]*")
_VERSION = re.compile(r"^([0-9]{1,3})(?:\.([0-9]{1,3}))?$")
_SLOT_ID_MAX = (1 << 8 * ctypes.sizeof(ctypes.c_ulong)) - 1  # a CK_SLOT_ID is a CK_ULONG


class URIError(ValueError):
    """A PKCS#11 URI this suite cannot use, told in one line."""


@dataclass(frozen=True)
class PKCS11URI:
    """A parsed PKCS#11 URI; None means the attribute is absent (matches anything)."""

    text: str
    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    library_manufacturer: str | None = None
    library_description: str | None = None
    library_version: tuple[int, int] | None = None
    object: str | None = None
    type: str | None = None
    id: bytes | None = None
    slot_id: int | None = None
    module_name: str | None = None
    module_path: str | None = None

    def names_object(self) -> bool:
        """Whether it names an object (object, type, id): no use for naming a token."""
        return any(getattr(self, name) is not None for name in OBJECT_ATTRIBUTES)

    def matches_library(self, manufacturer: str, description: str,
                        version: tuple[int, int]) -> bool:
        """The library attributes against C_GetInfo (blank padding already stripped)."""
        return (_same(self.library_manufacturer, manufacturer)
                and _same(self.library_description, description)
                and (self.library_version is None or self.library_version == tuple(version)))

    def matches_token(self, label: str, manufacturer: str, serial: str, model: str,
                      slot_id: int | None = None) -> bool:
        """The token attributes (and slot-id) against C_GetTokenInfo and the slot."""
        return (_same(self.token, label) and _same(self.manufacturer, manufacturer)
                and _same(self.serial, serial) and _same(self.model, model)
                and (self.slot_id is None or self.slot_id == slot_id))


def _same(wanted: str | None, actual: str) -> bool:
    # CK_TOKEN_INFO and CK_INFO strings are blank padded; the URI value is not.
    return wanted is None or wanted == actual.rstrip(" ")


def is_uri(text: str) -> bool:
    return text[: len(SCHEME)].lower() == SCHEME


def _decode(raw: str, name: str) -> bytes:
    out, index = bytearray(), 0
    while index < len(raw):
        char = raw[index]
        if char == "%":
            pair = raw[index + 1:index + 3]
            if len(pair) != 2 or not all(c in "0123456789abcdefABCDEF" for c in pair):
                raise URIError(f"{name}: '%' must be followed by two hex digits, "
                               f"got {raw[index:index + 3]!r}")
            out.append(int(pair, 16))
            index += 3
        else:
            out += char.encode("ascii")
            index += 1
    return bytes(out)


def _text(raw: str, name: str) -> str:
    try:
        return _decode(raw, name).decode("utf-8")
    except UnicodeDecodeError:
        raise URIError(f"{name}: the percent-encoded value is not UTF-8") from None


def _check_characters(raw: str, name: str, allowed: re.Pattern[str]) -> None:
    if not allowed.fullmatch(raw):
        bad = next(c for c in raw if not allowed.fullmatch(c))
        encoded = "".join(f"%{b:02X}" for b in bad.encode("utf-8"))
        raise URIError(f"{name}: {bad!r} must be percent-encoded as {encoded}")


def parse(text: str) -> PKCS11URI:
    """Parse ``pkcs11:path-attributes[?query-attributes]``; URIError says what is wrong."""
    if not is_uri(text):
        raise URIError(f"{text!r} is not a PKCS#11 URI (it must start with 'pkcs11:')")
    path, _, query = text[len(SCHEME):].partition("?")
    fields: dict[str, object] = {}
    parts = [("path", p, PATH_ATTRIBUTES, _PATH_VALUE) for p in path.split(";") if p]
    parts += [("query", q, QUERY_ATTRIBUTES, _QUERY_VALUE) for q in query.split("&") if q]
    seen: set[str] = set()
    for component, part, known, allowed in parts:
        name, equals, raw = part.partition("=")
        if not equals:
            raise URIError(f"{part!r}: expected name=value in the {component}")
        if name not in known:
            other = QUERY_ATTRIBUTES if component == "path" else PATH_ATTRIBUTES
            where = (f" (it belongs in the {'query' if component == 'path' else 'path'})"
                     if name in other else f" (known: {', '.join(known)})")
            raise URIError(f"unknown {component} attribute {name!r}{where}")
        if name in seen:
            raise URIError(f"{name}: given twice")
        seen.add(name)
        _check_characters(raw, name, allowed)
        fields[known[name]] = _value(name, raw)
    return PKCS11URI(text, **fields)  # type: ignore[arg-type]


def _value(name: str, raw: str) -> object:
    if name == "pin-value":
        raise URIError("pin-value is refused: PINs come only from the environment "
                       "(the vendor file's token.user_pin_env), never from a URI")
    if name == "pin-source":
        raise URIError("pin-source is refused: PINs come only from the environment "
                       "(the vendor file's token.user_pin_env)")
    if name == "id":
        return _decode(raw, name)
    value = _text(raw, name)
    if name == "library-version":
        match = _VERSION.match(value)
        if not match or max(int(n or 0) for n in match.groups()) > 255:  # CK_VERSION bytes
            raise URIError(f"library-version: {value!r} is not MAJOR or MAJOR.MINOR "
                           "(each 0 to 255)")
        return int(match.group(1)), int(match.group(2) or 0)
    if name == "slot-id":
        if not re.fullmatch(r"[0-9]{1,20}", value) or int(value) > _SLOT_ID_MAX:
            raise URIError(f"slot-id: {value!r} is not a decimal number from 0 to "
                           f"{_SLOT_ID_MAX}")
        return int(value)
    if name == "type" and value not in OBJECT_TYPES:
        raise URIError(f"type: {value!r} is not one of {', '.join(OBJECT_TYPES)}")
    return value


def encode(value: str) -> str:
    """Percent-encode a path attribute value (every character outside the unencoded set)."""
    return "".join(c if _PATH_VALUE.fullmatch(c) and c not in "%&" else
                   "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in value)


def token_uri(label: str, manufacturer: str, serial: str, model: str) -> str:
    """The URI naming exactly this token, as `probe` prints it."""
    values = (("token", label), ("manufacturer", manufacturer), ("serial", serial),
              ("model", model))
    return SCHEME + ";".join(f"{name}={encode(value.rstrip(' '))}" for name, value in values)

