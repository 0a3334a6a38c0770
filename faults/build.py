"""Build the fault-injecting PKCS#11 module (p11fault.c) with gcc.

    python faults/build.py DIRECTORY      # prints the path of the built library

The library is named after a hash of its source and of the compiler command, so a
directory that already holds a build of the same source is reused as it is.

Needs gcc and p11-kit's PKCS#11 header (Debian: gcc, libc6-dev, libp11-kit-dev).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "p11fault.c"
INCLUDE = Path("/usr/include/p11-kit-1")
HEADER = INCLUDE / "p11-kit" / "pkcs11.h"
FLAGS = ["-shared", "-fPIC", "-O2", "-std=c11", "-D_POSIX_C_SOURCE=200809L",
         "-fvisibility=hidden", "-Wall", "-Wextra", "-Werror"]
LIBRARIES = ["-ldl", "-lpthread"]


class BuildError(Exception):
    """The module could not be built; the message says what is missing or what failed."""


def build(directory: str | Path) -> Path:
    """Compile p11fault.c into `directory` (created if needed) and return the library."""
    compiler = shutil.which("gcc")
    if compiler is None:
        raise BuildError("gcc is not on PATH (Debian: apt-get install gcc libc6-dev)")
    if not HEADER.is_file():
        raise BuildError(f"{HEADER} is missing (Debian: apt-get install libp11-kit-dev)")
    command = [compiler, *FLAGS, f"-I{INCLUDE}"]
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(command).encode()).hexdigest()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    library = directory / f"libp11fault-{digest[:16]}.so"
    if library.is_file():
        return library
    partial = library.with_suffix(f".so.{os.getpid()}.partial")  # one per builder
    done = subprocess.run([*command, "-o", str(partial), str(SOURCE), *LIBRARIES],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BuildError(f"gcc failed on {SOURCE} (exit {done.returncode}):\n{done.stderr}")
    partial.replace(library)  # atomic: a concurrent user never sees half a library
    return library


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python faults/build.py DIRECTORY")
    try:
        print(build(sys.argv[1]))
    except BuildError as exc:
        sys.exit(f"faults/build.py: {exc}")
