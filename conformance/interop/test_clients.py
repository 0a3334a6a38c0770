"""Each module with the clients people use it from: OpenSC pkcs11-tool, GnuTLS p11tool and
OpenSSL through libengine-pkcs11-openssl, each a process of its own that loads the module
(as the suite loaded it, so with the same C_Initialize arguments) and finds the suite's
objects by PKCS#11 URI (RFC 7512) or CKA_ID. Whatever a client signs is verified with
cryptography against the public key the suite read from the module.

And a root CA key ceremony in miniature: a non-extractable key pair made on the token,
a self-signed root certificate made by OpenSSL with it, verified with cryptography, and
stored on the token as a certificate object with the key's CKA_ID.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from pkcs11 import Attribute, CertificateType, KeyType, MechanismFlag, ObjectClass
from pkcs11.exceptions import PKCS11Error

from conformance import keypolicy
from conformance.crosscheck import (
    DIGEST_INFO,
    as_cryptography,
    der_integer,
    ec_params,
    hash_of,
)
from conformance.interop.plugin import Side, parametrize_vendors
from conformance.model import Vendor, claims_variant
from conformance.provisioning import RUN_DIR_ENV
from conformance.suite import OBJECT_LABEL_PREFIX, returned
from conformance.uri import encode

MESSAGE = b"pkcs11-conformance client interop " * 40
CLIENT_TIMEOUT = 120  # seconds one client command may take
TOOLS = {"pkcs11-tool": "opensc", "p11tool": "gnutls-bin", "openssl": "openssl"}


def _key_choice(vendor: Vendor, rsa_bits: int, curve: str) -> tuple[str, int | str] | None:
    """("rsa", bits) when the module makes RSA keys of that size and signs with
    CKM_RSA_PKCS (what OpenSSL's engine and GnuTLS use); else ("ec", curve) with CKM_ECDSA;
    else None."""
    if (claims_variant(vendor.claims, "CKM_RSA_PKCS_KEY_PAIR_GEN", {"key_sizes": rsa_bits})
            and claims_variant(vendor.claims, "CKM_RSA_PKCS", {"key_sizes": rsa_bits})):
        return "rsa", rsa_bits
    if (claims_variant(vendor.claims, "CKM_EC_KEY_PAIR_GEN", {"curves": curve})
            and claims_variant(vendor.claims, "CKM_ECDSA", {"curves": curve})):
        return "ec", curve
    return None


def _plan(rsa_bits: int, curve: str, needs: tuple[str, ...]) -> Any:
    def plan(vendor: Vendor) -> tuple[str | None, Mapping[str, Any], tuple[str, ...],
                                      str | None]:
        choice = _key_choice(vendor, rsa_bits, curve)
        if choice is None:
            return (None, {}, needs, f"{vendor.id} claims neither {rsa_bits}-bit RSA key pairs "
                    f"with CKM_RSA_PKCS nor {curve} key pairs with CKM_ECDSA")
        kind, size = choice
        if kind == "rsa":
            return ("CKM_RSA_PKCS", {"key_sizes": size},
                    ("CKM_RSA_PKCS_KEY_PAIR_GEN", *needs), None)
        return "CKM_ECDSA", {"curves": size}, ("CKM_EC_KEY_PAIR_GEN", *needs), None
    return plan


KEY_NEEDS = ("C_GenerateKeyPair", "C_FindObjects", "C_Sign")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.name == "test_root_certificate_stored_beside_its_key":
        parametrize_vendors(metafunc, _plan(3072, "secp384r1", (*KEY_NEEDS, "C_CreateObject")))
    elif metafunc.definition.name == "test_openssl_makes_root_certificate_with_token_key":
        parametrize_vendors(metafunc, _plan(3072, "secp384r1", KEY_NEEDS))
    elif "vendor_id" in metafunc.fixturenames:
        parametrize_vendors(metafunc, _plan(2048, "secp256r1", KEY_NEEDS))


# ---- the clients ------------------------------------------------------------------------

def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:  # the project's set-up installs them: a missing one is a set-up fault
        pytest.fail(f"{name} is not on PATH (install {TOOLS[name]})")
    return found


def _pin(side: Side) -> str:
    return side.env[side.vendor.token.user_pin_env]


def _client(side: Side, command: list[str], what: str, env: Mapping[str, str] | None = None,
            ) -> str:
    """Run a client in the module's environment; a failure shows the client's output
    (never the command line's environment, which holds the PIN)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              timeout=CLIENT_TIMEOUT, env={**side.env, **(env or {})},
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{side.id}: {what} did not finish within {CLIENT_TIMEOUT} s")
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        lines = output.replace(_pin(side), "<PIN>").splitlines()
        errors = [line.strip() for line in lines if "error" in line.lower()
                  or "fail" in line.lower()] or lines[-5:]
        pytest.fail(f"{side.id}: {what} failed (exit {done.returncode}): "
                    + " / ".join(errors)[:900])
    return output


def _work_dir(side: Side) -> Path:
    """A directory for the clients' files, in the run directory removed at the end."""
    def make() -> Path:
        return Path(tempfile.mkdtemp(prefix="clients-", dir=os.environ.get(RUN_DIR_ENV)))
    path: Path = side.once("client directory", make)
    return path


def _key_uri(side: Side, ident: bytes, kind: str = "private") -> str:
    """The key's RFC 7512 URI: token label and serial (enough to name the token; the
    model is left out, as tpm2-pkcs11 pads it with NUL bytes that python-pkcs11 strips),
    CKA_ID and class."""
    token = side.target.token
    serial = bytes(token.serial).decode("ascii", "replace").strip()
    return (f"pkcs11:token={encode(token.label)};serial={encode(serial)};"
            f"id={_percent(ident)};type={kind}")


def _percent(ident: bytes) -> str:
    """CKA_ID as an RFC 7512 `id` value: every byte percent-encoded."""
    return "".join(f"%{b:02X}" for b in ident)


def _openssl_config(side: Side) -> Path:
    engines = sorted(glob.glob("/usr/lib/*/engines-3/pkcs11.so"))
    if not engines:
        pytest.fail("OpenSSL's PKCS#11 engine is not installed (libengine-pkcs11-openssl)")
    path = _work_dir(side) / "openssl.cnf"
    path.write_text("openssl_conf = init\n[init]\nengines = engines\n[engines]\n"
                    "pkcs11 = pkcs11\n[pkcs11]\nengine_id = pkcs11\n"
                    f"dynamic_path = {engines[0]}\nMODULE_PATH = {side.loadable}\ninit = 0\n")
    return path


def _openssl(side: Side, arguments: list[str], what: str) -> str:
    config = _openssl_config(side)
    return _client(side, [_tool("openssl"), *arguments, "-engine", "pkcs11",
                          "-passin", f"env:{side.vendor.token.user_pin_env}"],
                   what, {"OPENSSL_CONF": str(config)})


# ---- the keys the clients use -----------------------------------------------------------

def _token_key_pair(side: Side, variant: Mapping[str, Any], extractable: bool | None,
                    purpose: str) -> tuple[Any, Any, bytes]:
    """A key pair made on the token (token objects: the clients are other processes),
    labelled so `clean` finds it, destroyed when the run ends; once per module."""
    def make() -> tuple[Any, Any, bytes]:
        # Bytes of 0x80 and up, which a URI always percent-encodes, so a listing shows them
        # in one spelling.
        ident = bytes(0x80 | b for b in os.urandom(8))
        label = f"{OBJECT_LABEL_PREFIX}{purpose}-{ident.hex()}"
        private_template: dict[Attribute, Any] = {Attribute.ID: ident, Attribute.LABEL: label,
                                                  Attribute.SENSITIVE: True}
        if extractable is not None:
            private_template[Attribute.EXTRACTABLE] = extractable
        public_template = {Attribute.ID: ident, Attribute.LABEL: label}
        usages = keypolicy.usages(MechanismFlag.SIGN | MechanismFlag.VERIFY)
        try:
            if "key_sizes" in variant:
                public_template[Attribute.PUBLIC_EXPONENT] = b"\x01\x00\x01"
                public, private = side.session.generate_keypair(
                    KeyType.RSA, variant["key_sizes"], store=True, capabilities=usages,
                    public_template=public_template, private_template=private_template)
            else:
                params = side.session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: ec_params(variant["curves"])},
                    local=True)
                public, private = params.generate_keypair(
                    store=True, capabilities=usages, public_template=public_template,
                    private_template=private_template)
        except PKCS11Error as exc:
            pytest.fail(f"{side.id}: C_GenerateKeyPair of a token key pair for the clients "
                        f"must succeed: returned {returned(exc)}")
        side.created += [private, public]
        return public, private, ident
    result: tuple[Any, Any, bytes] = side.once(("client key", purpose), make)
    return result


def _verify(side: Side, public: Any, signature: bytes, digest: bytes, algorithm: Any,
            client: str) -> None:
    """A client's signature over `digest` verifies with cryptography against the public
    key the suite read from the module (raw r || s or DER for ECDSA)."""
    key = as_cryptography(public)
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(algorithm))
        else:
            if signature[:1] != b"\x30":  # r || s
                half = len(signature) // 2
                signature = utils.encode_dss_signature(int.from_bytes(signature[:half], "big"),
                                                       int.from_bytes(signature[half:], "big"))
            key.verify(signature, digest, ec.ECDSA(utils.Prehashed(algorithm)))
    except InvalidSignature:
        pytest.fail(f"{side.id}: the signature {client} made with the suite's key must verify "
                    "with cryptography against the public key read from the module")


def _hash_file(side: Side) -> Path:
    path = _work_dir(side) / "digest.bin"
    path.write_bytes(hash_of("sha256", MESSAGE))
    return path


# ---- the checks -------------------------------------------------------------------------

def test_pkcs11_tool_lists_and_signs(side: Side, variant: dict[str, Any]) -> None:
    """PKCS#11 v2.40 sections 5.7 (C_FindObjects) and 5.11 (C_Sign) as OpenSC
    pkcs11-tool uses them: it lists the suite's private key by CKA_ID and label, and signs
    with it (CKM_RSA_PKCS over a SHA-256 DigestInfo, or CKM_ECDSA over a SHA-256 hash);
    cryptography verifies the signature."""
    public, _, ident = _token_key_pair(side, variant, None, "client")
    base = [_tool("pkcs11-tool"), "--module", side.loadable, "--slot",
            str(side.target.token.slot.slot_id), "--login", "--pin",
            f"env:{side.vendor.token.user_pin_env}"]
    listing = _client(side, [*base, "--list-objects", "--type", "privkey"],
                      "pkcs11-tool --list-objects")
    assert f"ID:         {ident.hex()}" in listing, (
        f"{side.id}: pkcs11-tool --list-objects must list the suite's private key with "
        f"CKA_ID {ident.hex()}: {listing[-400:]}")
    directory = _work_dir(side)
    signature = directory / "pkcs11-tool.sig"
    if "key_sizes" in variant:  # CKM_RSA_PKCS over a DigestInfo, as the claim says
        data, mechanism = directory / "digest-info.bin", "RSA-PKCS"
        data.write_bytes(bytes.fromhex(DIGEST_INFO["sha256"]) + hash_of("sha256", MESSAGE))
    else:
        data, mechanism = _hash_file(side), "ECDSA"
    _client(side, [*base, "--sign", "--id", ident.hex(), "-m", mechanism, "-i", str(data),
                   "-o", str(signature)], f"pkcs11-tool --sign -m {mechanism}")
    _verify(side, public, signature.read_bytes(), hash_of("sha256", MESSAGE), hashes.SHA256(),
            "pkcs11-tool")


def test_p11tool_lists_exports_and_signs(side: Side, variant: dict[str, Any]) -> None:
    """PKCS#11 v2.40 sections 5.7 and 5.11 and RFC 7512 (PKCS#11 URIs) as GnuTLS uses them:
    p11tool finds the suite's private key by a URI naming its token and CKA_ID, exports
    the public key equal to the one the suite reads, and signs and verifies with the key
    (--test-sign)."""
    public, _, ident = _token_key_pair(side, variant, None, "client")
    uri = _key_uri(side, ident)
    base = [_tool("p11tool"), "--provider", side.loadable, "--login"]
    env = {"GNUTLS_PIN": _pin(side)}
    listing = _client(side, [*base, "--list-privkeys", uri], "p11tool --list-privkeys", env)
    assert f"id={_percent(ident)}".lower() in listing.lower(), (
        f"{side.id}: p11tool --list-privkeys {uri} must list the suite's key: {listing[-400:]}")
    exported = _client(side, [*base, "--export-pubkey", uri], "p11tool --export-pubkey", env)
    pem = exported[exported.find("-----BEGIN PUBLIC KEY-----"):].encode()
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        pytest.fail(f"{side.id}: p11tool --export-pubkey must give a PEM public key: "
                    f"{exported[-300:]}")
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_bytes(*spki) == as_cryptography(public).public_bytes(*spki), (
        f"{side.id}: the public key p11tool exports must equal the one the suite reads")
    tested = _client(side, [*base, "--test-sign", uri], "p11tool --test-sign", env)
    assert "Verifying against public key in the token... ok" in tested or (
        "Verifying against private key parameters... ok" in tested), (
        f"{side.id}: p11tool --test-sign must report a verified signature: {tested[-400:]}")


def test_openssl_engine_signs(side: Side, variant: dict[str, Any]) -> None:
    """PKCS#11 v2.40 section 5.11 and RFC 7512 as OpenSSL's PKCS#11 engine uses them:
    `openssl pkeyutl -sign` with the suite's private key, named by a PKCS#11 URI, signs a
    SHA-256 hash (PKCS#1 v1.5 over a DigestInfo, or ECDSA); cryptography verifies it."""
    public, _, ident = _token_key_pair(side, variant, None, "client")
    signature = _work_dir(side) / "openssl.sig"
    _openssl(side, ["pkeyutl", "-sign", "-keyform", "engine", "-inkey", _key_uri(side, ident),
                    "-in", str(_hash_file(side)), "-out", str(signature),
                    "-pkeyopt", "digest:sha256"], "openssl pkeyutl -sign")
    _verify(side, public, signature.read_bytes(), hash_of("sha256", MESSAGE), hashes.SHA256(),
            "OpenSSL's engine")


def _ceremony(side: Side, variant: Mapping[str, Any]) -> tuple[Any, Any, bytes, bytes]:
    """The root key (non-extractable, on the token) and the DER root certificate OpenSSL
    made with it through the engine; once per module."""
    public, private, ident = _token_key_pair(side, variant, False, "root")

    def make() -> bytes:
        out = _work_dir(side) / "root.pem"
        _openssl(side, ["req", "-new", "-x509", "-keyform", "engine", "-key",
                        _key_uri(side, ident), "-sha384", "-days", "1", "-set_serial", "1",
                        "-subj", f"/O=pkcs11-conformance/CN=Test Root on {side.id}",
                        "-addext", "basicConstraints=critical,CA:TRUE",
                        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                        "-out", str(out)], "openssl req -x509 (the root certificate)")
        return x509.load_pem_x509_certificate(out.read_bytes()).public_bytes(
            serialization.Encoding.DER)
    return public, private, ident, side.once(("root certificate", ident), make)


def test_openssl_makes_root_certificate_with_token_key(side: Side,
                                                       variant: dict[str, Any]) -> None:
    """PKCS#11 v2.40 sections 4.9 (CKA_EXTRACTABLE, CKA_SENSITIVE) and 5.11 (C_Sign), in a
    root key ceremony: a non-extractable RSA-3072 (or P-384) key pair generated on the
    token signs, through OpenSSL's engine, a self-signed CA certificate whose key is the
    token's public key and whose signature cryptography verifies; the private key stays
    non-extractable."""
    public, private, _, der = _ceremony(side, variant)
    certificate = x509.load_der_x509_certificate(der)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert certificate.public_key().public_bytes(*spki) == as_cryptography(
        public).public_bytes(*spki), (
        f"{side.id}: the root certificate must carry the token key's public key")
    try:
        certificate.verify_directly_issued_by(certificate)
    except (InvalidSignature, ValueError, TypeError) as exc:
        pytest.fail(f"{side.id}: the self-signed root certificate must verify with "
                    f"cryptography: {exc!r}")
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert private[Attribute.EXTRACTABLE] is False, (
        f"{side.id}: CKA_EXTRACTABLE of the root key must stay false after signing")


def test_root_certificate_stored_beside_its_key(side: Side, variant: dict[str, Any]) -> None:
    """PKCS#11 v2.40 section 4.6 (certificate objects: CKA_CERTIFICATE_TYPE, CKA_SUBJECT,
    CKA_ID, CKA_VALUE): the ceremony's root certificate, created on the token as an X.509
    certificate object with the key's CKA_ID, is found again by class and CKA_ID with the
    same DER value, and pkcs11-tool lists it with that ID."""
    _, _, ident, der = _ceremony(side, variant)
    certificate = x509.load_der_x509_certificate(der)
    label = f"{OBJECT_LABEL_PREFIX}root-{ident.hex()}"
    try:
        stored = side.session.create_object({
            Attribute.CLASS: ObjectClass.CERTIFICATE,
            Attribute.CERTIFICATE_TYPE: CertificateType.X_509, Attribute.TOKEN: True,
            Attribute.ID: ident, Attribute.LABEL: label, Attribute.VALUE: der,
            Attribute.SUBJECT: certificate.subject.public_bytes(),
            Attribute.ISSUER: certificate.issuer.public_bytes(),
            Attribute.SERIAL_NUMBER: der_integer(certificate.serial_number)})
    except PKCS11Error as exc:
        pytest.fail(f"{side.id}: C_CreateObject of the root certificate must succeed: "
                    f"returned {returned(exc)}")
    side.created.append(stored)
    session = side.target.token.open()
    try:
        found = list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE,
                                          Attribute.ID: ident}))
        assert len(found) == 1, (f"{side.id}: C_FindObjects by CKO_CERTIFICATE and the key's "
                                 f"CKA_ID must find the certificate once: found {len(found)}")
        assert found[0][Attribute.VALUE] == der, (
            f"{side.id}: CKA_VALUE of the stored certificate must be its DER encoding")
    finally:
        session.close()
    listing = _client(side, [_tool("pkcs11-tool"), "--module", side.loadable, "--slot",
                             str(side.target.token.slot.slot_id), "--list-objects", "--type",
                             "cert"], "pkcs11-tool --list-objects --type cert")
    assert f"ID:         {ident.hex()}" in listing, (
        f"{side.id}: pkcs11-tool must list the root certificate with the key's CKA_ID "
        f"{ident.hex()}: {listing[-400:]}")

