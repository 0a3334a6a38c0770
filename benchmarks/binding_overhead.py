"""The Python binding's overhead: the same operations on SoftHSM2 through a minimal C
harness (benchmarks/harness.c, built with gcc here) and through python-pkcs11, as the
suite calls them.

    .venv/bin/python benchmarks/binding_overhead.py [--seconds 2] [--repeat 3]

A fresh throwaway token; each side runs in a process of its own (a module is initialized
once per process), one session, the same keys and inputs: SHA-256 digest of 1 KiB,
SHA256-RSA-PKCS signature (RSA-2048) of 1 KiB, AES-256-CBC-PAD encryption of 1 KiB.
Figures are the median of the repeats, in operations per second.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conformance.cbuild import build, cache_directory  # noqa: E402
from conformance.model import TokenSpec  # noqa: E402
from conformance.provisioning.softhsm2 import SoftHSM2Token  # noqa: E402

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
OPERATIONS = ("SHA-256 digest, 1 KiB", "SHA256-RSA-PKCS sign, RSA-2048, 1 KiB",
              "AES-256-CBC-PAD encrypt, 1 KiB")

C_SIDE = """
import ctypes, json, os, sys
harness = ctypes.CDLL(sys.argv[1])
harness.harness_run.restype = ctypes.c_long
harness.harness_run.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                ctypes.c_int, ctypes.c_double, ctypes.POINTER(ctypes.c_double)]
elapsed = ctypes.c_double()
done = harness.harness_run(sys.argv[2].encode(), b"bench", os.environ["BENCH_PIN"].encode(),
                           int(sys.argv[3]), float(sys.argv[4]), ctypes.byref(elapsed))
if done < 0:
    sys.exit(f"harness failed: {done}")
print(json.dumps(done / elapsed.value))
"""

PYTHON_SIDE = """
import json, os, sys, time
import pkcs11
from pkcs11 import KeyType, Mechanism, MechanismFlag
token = pkcs11.lib(sys.argv[1]).get_token(token_label="bench")
data = bytes(i % 256 for i in range(1024))
with token.open(rw=True, user_pin=os.environ["BENCH_PIN"]) as session:
    aes = session.generate_key(KeyType.AES, 256, capabilities=MechanismFlag.ENCRYPT)
    public, private = session.generate_keypair(KeyType.RSA, 2048,
                                               capabilities=MechanismFlag.SIGN)
    operation = [lambda: session.digest(data, mechanism=Mechanism.SHA256),
                 lambda: private.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS),
                 lambda: aes.encrypt(data, mechanism=Mechanism.AES_CBC_PAD,
                                     mechanism_param=bytes(16))][int(sys.argv[2])]
    done, start = 0, time.perf_counter()
    end = start + float(sys.argv[3])
    while time.perf_counter() < end or done < 3:
        operation()
        done += 1
    print(json.dumps(done / (time.perf_counter() - start)))
"""


def side(code: str, *args: str) -> float:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"binding_overhead: {done.stderr.strip()}")
    return float(json.loads(done.stdout))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    harness = build(ROOT / "benchmarks" / "harness.c", cache_directory(),
                    ["-I/usr/include/p11-kit-1"])
    token = SoftHSM2Token(TokenSpec("bench", "BENCH_PIN", "BENCH_SO_PIN", "softhsm2"), MODULE)
    token.create()
    try:
        rows = []
        for index, name in enumerate(OPERATIONS):
            c = statistics.median(side(C_SIDE, str(harness), MODULE, str(index),
                                       str(args.seconds)) for _ in range(args.repeat))
            py = statistics.median(side(PYTHON_SIDE, MODULE, str(index), str(args.seconds))
                                   for _ in range(args.repeat))
            rows.append((name, c, py))
    finally:
        token.remove()
    print(f"SoftHSM2, one session, {args.seconds:g} s per run, median of {args.repeat}:")
    print("| operation | C harness ops/s | python-pkcs11 ops/s | binding / C |")
    print("|---|---:|---:|---:|")
    for name, c, py in rows:
        print(f"| {name} | {c:,.0f} | {py:,.0f} | {py / c:.2f} |")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
