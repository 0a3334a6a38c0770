"""`pkcs11-conformance bench`: operations per second and latency per claimed mechanism and
key size, with one session and with several sessions in threads.

A benchmark measures, it checks nothing: an operation that fails is recorded with its
error and the next one runs. Conformance is the suites' business.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import Attribute, GCMParams, KeyType, ObjectClass
from pkcs11.exceptions import PKCS11Error

from . import __version__, keypolicy
from .crosscheck import (
    ALL_SECRET,
    DIGEST_INFO,
    Keys,
    ec_params,
    hash_len,
    hash_of,
    oaep_param,
    pss_params,
)
from .loading import REFERENCE_VENDOR, load_vendor, writable_directory
from .model import Vendor
from .names import mechanism
from .target import Target, open_target, vendor_pin

FORMAT = "pkcs11-conformance-bench/1"
DATA = bytes(range(256)) * 4  # 1 KiB: the input of digests, MACs and ciphers

HASH_NAMES = ("sha1", "sha224", "sha256", "sha384", "sha512")
# Hash-and-sign mechanisms and their hash (PSS parameters name it).
RSA_PKCS_HASHED = {f"CKM_{h.upper()}_RSA_PKCS": h for h in HASH_NAMES}
RSA_PSS_HASHED = {f"CKM_{h.upper()}_RSA_PKCS_PSS": h for h in HASH_NAMES}
ECDSA_HASHED = {f"CKM_ECDSA_{h.upper()}": h for h in HASH_NAMES}
HMACS = {"CKM_SHA_1_HMAC", "CKM_SHA224_HMAC", "CKM_SHA256_HMAC", "CKM_SHA384_HMAC",
         "CKM_SHA512_HMAC"}
AES_MODES = {"CKM_AES_ECB": None, "CKM_AES_CBC": 16, "CKM_AES_CBC_PAD": 16}
DIGESTS = {"CKM_SHA_1", "CKM_SHA224", "CKM_SHA256", "CKM_SHA384", "CKM_SHA512"}
MAX_SECONDS = 3600.0  # per operation and concurrency: an hour is already a long bench
MAX_THREADS = 256  # sessions at once; a module's session table is finite


@dataclass
class Item:
    """One operation to measure: `bind(session)` finds the keys through that session (not
    timed) and returns the operation, done once per call."""

    area: str
    mechanism: str
    parameters: dict[str, Any]
    operation: str
    bind: Callable[[Any], Callable[[], object]]


def add_command(commands: Any) -> None:
    bench = commands.add_parser(
        "bench", help="measure operations per second per claimed mechanism",
        description="Operations per second and latency (p50, p99) per claimed mechanism and "
                    "key size: sign, verify, encrypt, decrypt, wrap, unwrap, key generation "
                    "and digest, with one session and with --threads sessions in threads. "
                    "Writes OUTPUT/<vendor>/bench.json, which `report` adds to the vendor "
                    "report and the comparison matrix.")
    bench.add_argument("vendor", metavar="VENDOR.yaml", nargs="?",
                       help="vendor declaration (default: SoftHSM2 in a throwaway token)")
    bench.add_argument("--module", metavar="PATH|NAME")
    bench.add_argument("--output", metavar="DIR", default="reports", type=Path)
    bench.add_argument("--seconds", type=_seconds, default=0.5,
                       help="time spent on each operation, per concurrency (default 0.5)")
    bench.add_argument("--threads", type=_threads, default=4,
                       help="sessions in threads for the concurrent figure (default 4)")
    bench.add_argument("-k", dest="select", metavar="TEXT",
                       help="only operations whose mechanism or operation contains TEXT")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds above 0 and up to {MAX_SECONDS:.0f}, got {text!r}")
    return value


def _threads(text: str) -> int:
    if not text.strip().isascii() or not text.strip().isdigit() \
            or not 1 <= int(text) <= MAX_THREADS:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of sessions from 1 to {MAX_THREADS}, got {text!r}")
    return int(text)


def run(args: argparse.Namespace) -> int:
    vendor = load_vendor(args.vendor or REFERENCE_VENDOR, args.module)
    if not vendor.token.provision:
        vendor_pin(vendor)  # an unset or empty PIN is refused before anything else
    writable_directory(args.output / vendor.id)  # before the module is loaded, not after
    keypolicy.use(vendor.keys)
    target = open_target(vendor, threads=True)
    try:
        keys = BenchKeys(target.login_session())
        items = [i for i in plan(vendor, keys)
                 if not args.select or args.select in i.mechanism or args.select in i.operation]
        results = []
        for index, item in enumerate(items, 1):
            if vendor.keys.reinitialize_every:  # a module that frees keys only then
                target.reinitialize()
                keys.reset(target.login_session())
            results.append(measure(item, target, args.seconds, args.threads))
            _progress(index, len(items), results[-1])
        document = {"format": FORMAT, "run_info": _run_info(vendor, target, args),
                    "results": results}
    finally:
        target.close()
    out = args.output / vendor.id / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"pkcs11-conformance: wrote {out}")
    return 0


def _progress(index: int, total: int, result: dict[str, Any]) -> None:
    what = f"[{index}/{total}] {result['mechanism']} {result['operation']} " + \
        " ".join(f"{k}={v}" for k, v in result["parameters"].items())
    if result.get("error"):
        line = f"{what}: {result['error']}"
    else:
        one, many = result["single"], result["concurrent"]
        line = (f"{what}: {one['ops_per_second']:.1f} ops/s, p50 {one['p50_ms']:.2f} ms; "
                f"{many['sessions']} sessions {many['ops_per_second']:.1f} ops/s")
    print(line, file=sys.stderr, flush=True)


# --------------------------------------------------------------------- what to measure


def plan(vendor: Vendor, keys: Keys) -> Iterator[Item]:
    """The operations the vendor's claims allow, in a stable order."""
    claims = vendor.claims

    def values(name: str, key: str = "key_sizes") -> list[Any]:
        return list(claims.get(name, {}).get(key, ()))

    def first_hash(name: str, default: str) -> str:
        return str((values(name, "hashes") or [default])[0])

    rsa_sizes = values("CKM_RSA_PKCS_KEY_PAIR_GEN")
    curves = values("CKM_EC_KEY_PAIR_GEN", "curves")
    aes_sizes = values("CKM_AES_KEY_GEN")
    for name in sorted(DIGESTS & claims.keys()):
        yield Item("digest", name, {}, "digest", partial(_digest, mechanism(name)))
    for name in sorted(claims):
        hashed = RSA_PKCS_HASHED.get(name) or RSA_PSS_HASHED.get(name)
        if not hashed and name not in ("CKM_RSA_PKCS", "CKM_RSA_PKCS_PSS"):
            continue
        param: Any = None
        hash_name = hashed or "sha256"
        if name in RSA_PSS_HASHED or name == "CKM_RSA_PKCS_PSS":
            hash_name = hashed or first_hash(name, "sha256")
            param = pss_params(hash_name, hash_len(hash_name))
        data = DATA if hashed else hash_of(hash_name, DATA)
        if name == "CKM_RSA_PKCS":
            data = bytes.fromhex(DIGEST_INFO["sha256"]) + data
        for bits in [b for b in values(name) if b in rsa_sizes]:
            if param and (bits - 1 + 7) // 8 < 2 * hash_len(hash_name) + 2:
                continue  # no room for a salt as long as the hash (RFC 8017 section 9.1.1)
            yield from _sign_verify(name, {"key_bits": bits}, param, data,
                                    partial(keys.rsa, bits))
    for name in sorted(claims):
        if name != "CKM_ECDSA" and name not in ECDSA_HASHED:
            continue
        data = DATA if name in ECDSA_HASHED else hash_of("sha256", DATA)
        for curve in [c for c in values(name, "curves") if c in curves]:
            yield from _sign_verify(name, {"curve": curve}, None, data, partial(keys.ec, curve))
    if "CKM_EDDSA" in claims and "ed25519" in values("CKM_EC_EDWARDS_KEY_PAIR_GEN", "curves"):
        yield from _sign_verify("CKM_EDDSA", {"curve": "ed25519"}, None, DATA,
                                partial(keys.edwards, "ed25519"))
    if "CKM_AES_CMAC" in claims:
        for bits in [b for b in values("CKM_AES_CMAC") if b in aes_sizes][:1]:
            yield from _sign_verify("CKM_AES_CMAC", {"key_bits": bits}, None, DATA,
                                    partial(_both, keys.secret, KeyType.AES, bits))
    for name in sorted(HMACS & claims.keys()):
        for bits in values(name)[:1]:
            yield from _sign_verify(name, {"key_bits": bits}, None, DATA,
                                    partial(_both, keys.secret, KeyType.GENERIC_SECRET, bits))
    for name in sorted(AES_MODES.keys() & claims.keys()):
        iv = bytes(AES_MODES[name] or 0) or None
        for bits in [b for b in values(name) if b in aes_sizes]:
            yield from _encrypt_decrypt(name, {"key_bits": bits}, iv, DATA,
                                        partial(_both, keys.secret, KeyType.AES, bits))
    if "CKM_AES_GCM" in claims:
        gcm = GCMParams(bytes(12), b"", 128)  # a fixed nonce: figures, not secrecy
        for bits in [b for b in values("CKM_AES_GCM") if b in aes_sizes]:
            yield from _encrypt_decrypt("CKM_AES_GCM", {"key_bits": bits, "tag_bits": 128},
                                        gcm, DATA,
                                        partial(_both, keys.secret, KeyType.AES, bits))
    for name in ("CKM_RSA_PKCS", "CKM_RSA_PKCS_OAEP"):
        if name not in claims:
            continue
        param = oaep_param(first_hash(name, "sha1")) if name == "CKM_RSA_PKCS_OAEP" else None
        for bits in [b for b in values(name) if b in rsa_sizes]:
            yield from _encrypt_decrypt(name, {"key_bits": bits}, param, DATA[:32],
                                        partial(keys.rsa, bits))
    for name in ("CKM_AES_KEY_WRAP", "CKM_AES_KEY_WRAP_PAD", "CKM_AES_KEY_WRAP_KWP"):
        if name in claims and 256 in aes_sizes and 128 in aes_sizes:
            yield from _wrap_unwrap(name, {"key_bits": 256}, None,
                                    partial(_both, keys.secret, KeyType.AES, 256, False),
                                    partial(keys.secret, KeyType.AES, 128))
    if "CKM_RSA_PKCS_OAEP" in claims and 128 in aes_sizes:
        param = oaep_param(first_hash("CKM_RSA_PKCS_OAEP", "sha1"))
        for bits in [b for b in values("CKM_RSA_PKCS_OAEP") if b in rsa_sizes][:1]:
            yield from _wrap_unwrap("CKM_RSA_PKCS_OAEP", {"key_bits": bits}, param,
                                    partial(keys.rsa, bits),
                                    partial(keys.secret, KeyType.AES, 128))
    for bits in rsa_sizes:
        yield Item("keygen", "CKM_RSA_PKCS_KEY_PAIR_GEN", {"key_bits": bits}, "generate",
                   partial(_generate_rsa, bits))
    for curve in curves:
        yield Item("keygen", "CKM_EC_KEY_PAIR_GEN", {"curve": curve}, "generate",
                   partial(_generate_ec, curve))
    for bits in aes_sizes:
        yield Item("keygen", "CKM_AES_KEY_GEN", {"key_bits": bits}, "generate",
                   partial(_generate_aes, bits))


def _digest(mech: Any, session: Any) -> Callable[[], object]:
    return partial(session.digest, DATA, mechanism=mech)


def _both(make: Callable[..., Any], *args: Any) -> tuple[Any, Any]:
    """A secret key in the place of a (public, private) pair."""
    key = make(*args)
    return key, key


SIGN_VERIFY = pkcs11.MechanismFlag.SIGN | pkcs11.MechanismFlag.VERIFY


def _generate_rsa(bits: int, session: Any) -> Callable[[], object]:
    return lambda: _destroyed(session.generate_keypair(
        KeyType.RSA, bits, store=keypolicy.on_token(),
        capabilities=keypolicy.usages(SIGN_VERIFY)))


def _generate_ec(curve: str, session: Any) -> Callable[[], object]:
    params = session.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: ec_params(curve)}, local=True)
    return lambda: _destroyed(params.generate_keypair(
        store=keypolicy.on_token(), capabilities=keypolicy.usages(SIGN_VERIFY)))


def _generate_aes(bits: int, session: Any) -> Callable[[], object]:
    return lambda: _destroyed((session.generate_key(KeyType.AES, bits,
                                                    store=keypolicy.on_token()),))


class BenchKeys(Keys):
    """The suites' reusable keys, secret keys with a CKA_ID too: each thread's session
    finds every key by its CKA_ID."""

    def reset(self, session: Any) -> None:
        """After a re-initialization: the keys made so far are gone."""
        self.session = session
        self._cache.clear()

    def secret(self, key_type: KeyType, bits: int, extractable: bool = True) -> Any:
        return self._once(("secret", key_type, bits, extractable), lambda: (
            self.session.generate_key(
                key_type, bits, id=os.urandom(8), store=keypolicy.on_token(),
                capabilities=ALL_SECRET, template={Attribute.SENSITIVE: not extractable,
                                                   Attribute.EXTRACTABLE: extractable})))


def _destroyed(made: Any) -> None:
    for key in made:
        key.destroy()


def _sign_verify(name: str, parameters: dict[str, Any], param: Any, data: bytes,
                 pair: Callable[[], Any]) -> Iterator[Item]:
    options = {"mechanism": mechanism(name), "mechanism_param": param}

    def sign(session: Any) -> Callable[[], object]:
        return partial(_on(session, pair()[1]).sign, data, **options)

    def verify(session: Any) -> Callable[[], object]:
        signature = sign(session)()
        return partial(_on(session, pair()[0]).verify, data, signature, **options)

    yield Item("sign", name, parameters, "sign", sign)
    yield Item("sign", name, parameters, "verify", verify)


def _encrypt_decrypt(name: str, parameters: dict[str, Any], param: Any, data: bytes,
                     pair: Callable[[], Any]) -> Iterator[Item]:
    options = {"mechanism": mechanism(name), "mechanism_param": param}

    def encrypt(session: Any) -> Callable[[], object]:
        return partial(_on(session, pair()[0]).encrypt, data, **options)

    def decrypt(session: Any) -> Callable[[], object]:
        ciphertext = encrypt(session)()
        return partial(_on(session, pair()[1]).decrypt, ciphertext, **options)

    yield Item("encrypt", name, parameters, "encrypt", encrypt)
    yield Item("encrypt", name, parameters, "decrypt", decrypt)


def _wrap_unwrap(name: str, parameters: dict[str, Any], param: Any,
                 wrapping: Callable[[], Any], target: Callable[[], Any]) -> Iterator[Item]:
    options = {"mechanism": mechanism(name), "mechanism_param": param}

    def wrap(session: Any) -> Callable[[], object]:
        return partial(_on(session, wrapping()[0]).wrap_key, _on(session, target()),
                       **options)

    def unwrap(session: Any) -> Callable[[], object]:
        wrapped = wrap(session)()
        unwrapping = _on(session, wrapping()[1])

        def once() -> None:  # the unwrapped key is destroyed: one object per call at most
            unwrapping.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, wrapped,
                                  store=keypolicy.on_token(), **options).destroy()
        return once

    yield Item("wrap", name, parameters, "wrap", wrap)
    yield Item("wrap", name, parameters, "unwrap", unwrap)


def _on(session: Any, key: Any) -> Any:
    """`key` as seen from `session`: python-pkcs11 runs an object's operations on the
    session it was found in, so a thread's own session finds the key by its CKA_ID."""
    return key if key.session is session else Keys.on(session, key)


# --------------------------------------------------------------------- how it is measured


def measure(item: Item, target: Target, seconds: float, threads: int) -> dict[str, Any]:
    """One session for `seconds`, then `threads` sessions in threads for `seconds`."""
    result: dict[str, Any] = {"area": item.area, "mechanism": item.mechanism,
                              "parameters": item.parameters, "operation": item.operation}
    try:
        operation = item.bind(target.login_session())
        operation()  # warm-up: first-call costs paid outside the figures
        started = time.perf_counter()
        latencies = _timed(operation, seconds)
        result["single"] = _summary(latencies, time.perf_counter() - started, 1)
        sessions = [target.token.open(rw=True) for _ in range(threads)]
        try:
            bound = [item.bind(opened) for opened in sessions]
            measured: list[list[float]] = [[] for _ in sessions]
            errors: list[BaseException] = []

            def worker(index: int) -> None:
                try:
                    measured[index] = _timed(bound[index], seconds)
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
            started = time.perf_counter()
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join()
            elapsed = time.perf_counter() - started
            if errors:
                raise errors[0]
            result["concurrent"] = _summary([x for one in measured for x in one], elapsed,
                                            threads)
        finally:
            for opened in sessions:
                opened.close()
    except (PKCS11Error, LookupError, ValueError, TypeError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}".rstrip(": ")
    return result


def _timed(operation: Callable[[], object], seconds: float) -> list[float]:
    """Latencies of `operation` repeated for `seconds` (at least 3 times)."""
    latencies = []
    end = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        operation()
        latencies.append(time.perf_counter() - start)
        if start >= end and len(latencies) >= 3:
            return latencies


def _summary(latencies: list[float], elapsed: float, sessions: int) -> dict[str, Any]:
    ordered = sorted(latencies)

    def rank(p: float) -> float:  # nearest-rank percentile
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))]

    return {"sessions": sessions, "operations": len(latencies),
            "ops_per_second": len(latencies) / elapsed,
            "p50_ms": 1000 * rank(0.50), "p99_ms": 1000 * rank(0.99),
            "mean_ms": 1000 * statistics.fmean(latencies)}


def _run_info(vendor: Vendor, target: Target, args: argparse.Namespace) -> dict[str, Any]:
    info = target.info()
    return {"suite": {"version": __version__}, "vendor": {"id": vendor.id, "title": vendor.title},
            "module": info["module"], "token": info["token"],
            "settings": {"seconds": args.seconds, "threads": args.threads,
                         "data_bytes": len(DATA)},
            "host": {"platform": platform.platform(), "cpus": os.cpu_count(),
                     "python": platform.python_version(),
                     "python_pkcs11": _version("python-pkcs11")},
            "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


def attach(results: dict[str, Any], path: Path, this_host_only: bool = False) -> dict[str, Any]:
    """The results document read from `path`, with the bench.json beside it (a `bench`
    run into the same output directory) under "bench", for the reports. `run` passes
    `this_host_only`: figures measured on another machine (say, committed ones) are not
    shown beside a fresh run."""
    bench = path.parent / "bench.json"
    if not bench.exists():
        return results
    problem: str | None
    try:
        document = json.loads(bench.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        document, problem = None, f"not a readable JSON file ({str(exc).split(';')[0]})"
    else:
        problem = _shape_problem(document)
    if problem and this_host_only:  # a fresh run is reported without these figures
        print(f"pkcs11-conformance: {bench}: left out of the report: {problem}",
              file=sys.stderr)
        return results
    if problem:
        raise ValueError(f"{bench}: {problem}")
    if document["format"] != FORMAT:  # another format's figures are not shown
        return results
    host = document["run_info"]["host"].get("platform")
    if this_host_only and host != platform.platform():
        return results
    return {**results, "bench": document}


def _shape_problem(document: Any) -> str | None:
    """What keeps `document` from being a bench.json the reports can show (None: nothing).
    A file of another format is left out, not refused."""
    if not isinstance(document, dict):
        return "not a bench.json (expected a JSON object)"
    if document.get("format") != FORMAT:
        return None
    info = document.get("run_info")
    if not (isinstance(info, dict) and isinstance(info.get("host"), dict)
            and isinstance(info.get("settings"), dict)):
        return "run_info: expected the objects host and settings"
    settings, host = info["settings"], info["host"]
    for key in ("seconds", "threads", "data_bytes"):
        if isinstance(settings.get(key), bool) or not isinstance(settings.get(key), (int, float)):
            return f"run_info.settings.{key}: expected a number"
    for key in ("platform", "cpus", "python_pkcs11"):
        if key not in host:
            return f"run_info.host.{key}: missing"
    items = document.get("results")
    if not isinstance(items, list):
        return "results: expected a list"
    for index, item in enumerate(items):
        where = f"results[{index}]"
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in
                                                 ("mechanism", "operation")):
            return f"{where}: expected an object with the strings mechanism and operation"
        if not isinstance(item.get("parameters"), dict):
            return f"{where}.parameters: expected an object"
        if item.get("error") is not None and not isinstance(item["error"], str):
            return f"{where}.error: expected a string"
        if item.get("error"):
            continue
        for figures in ("single", "concurrent"):
            one = item.get(figures)
            if not isinstance(one, dict) or not all(
                    isinstance(one.get(k), (int, float)) and not isinstance(one.get(k), bool)
                    for k in ("ops_per_second", "p50_ms", "p99_ms", "sessions")):
                return f"{where}.{figures}: expected ops_per_second, p50_ms, p99_ms, sessions"
    return None


# --------------------------------------------------------------------- how it is shown

BENCH_NOTE = ("Measured by `pkcs11-conformance bench`: each operation repeated for {seconds} s "
              "on one session, then on {threads} sessions in threads at once (the module "
              "initialized with CKF_OS_LOCKING_OK); inputs of {data} bytes for digests, "
              "MACs and ciphers. Host: {platform}, {cpus} CPUs, python-pkcs11 "
              "{python_pkcs11}. Latencies include the Python binding.")


def _label(result: dict[str, Any]) -> str:
    parameters = ", ".join(f"{k}={v}" for k, v in result["parameters"].items())
    return f"{result['mechanism']}{' · ' + parameters if parameters else ''} · " \
        f"{result['operation']}"


def _figures(result: dict[str, Any]) -> list[str]:
    if result.get("error"):
        return ["error: " + result["error"]] + [""] * 5
    one, many = result["single"], result["concurrent"]
    return [f"{one['ops_per_second']:.1f}", f"{one['p50_ms']:.3f}", f"{one['p99_ms']:.3f}",
            f"{many['ops_per_second']:.1f}", f"{many['p50_ms']:.3f}", f"{many['p99_ms']:.3f}"]


def _columns(threads: int) -> list[str]:
    return ["ops/s", "p50 ms", "p99 ms", f"ops/s ({threads} sessions)",
            f"p50 ms ({threads})", f"p99 ms ({threads})"]


def note(document: dict[str, Any]) -> str:
    info = document["run_info"]
    return BENCH_NOTE.format(**info["settings"], **info["host"],
                             data=info["settings"]["data_bytes"])


def markdown_section(document: dict[str, Any]) -> list[str]:
    """The Performance section of a vendor's report.md."""
    from .render import md_cell, md_table

    threads = document["run_info"]["settings"]["threads"]
    lines = ["", "## Performance", "", md_cell(note(document)), ""]
    lines += md_table(["operation", *_columns(threads)],
                      [[md_cell(_label(r)), *_figures(r)] for r in document["results"]],
                      numeric=range(1, 7))
    return lines


def html_section(document: dict[str, Any]) -> list[str]:
    """The Performance section of a vendor's index.html."""
    from .render import Cell, esc, html_table, num_cell

    threads = document["run_info"]["settings"]["threads"]
    return ['<h2 id="performance">Performance</h2>', f'<p class="note">{esc(note(document))}</p>',
            html_table(["operation", *(Cell(esc(c), "num", header=True)
                                       for c in _columns(threads))],
                       [[Cell(esc(_label(r))), *map(num_cell, _figures(r))]
                        for r in document["results"]])]


def _matrix_rows(benches: dict[str, dict[str, Any]]) -> tuple[list[str], dict[str, dict[str, str]]]:
    """Rows (operations measured anywhere, in first-seen order) and their one-session
    ops/s per vendor."""
    order: list[str] = []
    cells: dict[str, dict[str, str]] = {}
    for vendor, document in benches.items():
        for result in document["results"]:
            label = _label(result)
            if label not in cells:
                order.append(label)
                cells[label] = {}
            cells[label][vendor] = "error" if result.get("error") else \
                f"{result['single']['ops_per_second']:.1f}"
    return order, cells


def matrix_markdown(benches: dict[str, dict[str, Any]]) -> list[str]:
    from .render import md_cell, md_table

    if not benches:
        return []
    order, cells = _matrix_rows(benches)
    vendors = list(benches)
    lines = ["", "## Performance (operations per second, one session)", "",
             "From each vendor's bench.json (see its report for the settings and the "
             "concurrent figures); - where the vendor was not measured for it.", ""]
    lines += md_table(["operation", *map(md_cell, vendors)],
                      [[md_cell(label), *(cells[label].get(v, "-") for v in vendors)]
                       for label in order], numeric=range(1, len(vendors) + 1))
    return lines


def matrix_html(benches: dict[str, dict[str, Any]]) -> list[str]:
    from .render import Cell, esc, html_table, num_cell

    if not benches:
        return []
    order, cells = _matrix_rows(benches)
    vendors = list(benches)
    return ['<h2 id="performance">Performance</h2>',
            '<p class="note">Operations per second on one session, from each vendor\'s '
            "bench.json (settings and concurrent figures in its report); - where not "
            "measured.</p>",
            html_table(["operation", *(Cell(esc(v), "num", header=True) for v in vendors)],
                       [[Cell(esc(label)), *(num_cell(cells[label].get(v, "-"))
                                             for v in vendors)] for label in order])]
