"""Build the fault-injecting PKCS#11 module (p11fault.c) with gcc.

    python faults/build.py DIRECTORY      # prints the path of the built library

The library is named after a hash of its source and of the compiler command, so a
directory that already holds a build of the same source is reused as it is.

Needs gcc and p11-kit's PKCS#11 header (Debian: gcc, libc6-dev, libp11-kit-dev).
"""

from __future__ import annotations

import sys
from pathlib import Path

from conformance.cbuild import BuildError
from conformance.cbuild import build as build_library

SOURCE = Path(__file__).resolve().parent / "p11fault.c"
INCLUDE = Path("/usr/include/p11-kit-1")
HEADER = INCLUDE / "p11-kit" / "pkcs11.h"


def build(directory: str | Path) -> Path:
    """Compile p11fault.c into `directory` (created if needed) and return the library."""
    if not HEADER.is_file():
        raise BuildError(f"{HEADER} is missing (Debian: apt-get install libp11-kit-dev)")
    return build_library(SOURCE, Path(directory), [f"-I{INCLUDE}"])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python faults/build.py DIRECTORY")
    try:
        print(build(sys.argv[1]))
    except BuildError as exc:
        sys.exit(f"faults/build.py: {exc}")
