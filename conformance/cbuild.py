"""Compile a small C source into a shared library, once per source and compiler command.

The library is named after a hash of its source and of the command, so a directory that
already holds a build of the same source is reused as it is; a build lands under its final
name atomically, so concurrent processes never load half a library.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

FLAGS = ["-shared", "-fPIC", "-O2", "-std=c11", "-D_POSIX_C_SOURCE=200809L",
         "-fvisibility=hidden", "-Wall", "-Wextra", "-Werror"]
LIBRARIES = ["-ldl", "-lpthread"]


class BuildError(Exception):
    """The library could not be built; the message says what is missing or what failed."""


def cache_directory() -> Path:
    """Where built helper libraries are kept between runs ($XDG_CACHE_HOME or ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pkcs11-conformance"


def build(source: Path, directory: Path, options: Sequence[str] = ()) -> Path:
    """Compile `source` with `options` into `directory` (created if needed)."""
    compiler = shutil.which("gcc")
    if compiler is None:
        raise BuildError(f"cannot build {source.name}: gcc is not on PATH "
                         "(Debian: apt-get install gcc libc6-dev)")
    command = [compiler, *FLAGS, *options]
    digest = hashlib.sha256(source.read_bytes() + " ".join(command).encode()).hexdigest()
    directory.mkdir(parents=True, exist_ok=True)
    library = directory / f"lib{source.stem}-{digest[:16]}.so"
    if library.is_file():
        return library
    partial = library.with_suffix(f".so.{os.getpid()}.partial")  # one per builder
    done = subprocess.run([*command, "-o", str(partial), str(source), *LIBRARIES],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BuildError(f"gcc failed on {source} (exit {done.returncode}):\n{done.stderr}")
    partial.replace(library)
    return library
