"""NIST CAVP response files (.rsp and the SP 800-38F key wrap .txt files), read from the
installed `cryptography_vectors` package (pyca's test vectors, on PyPI): nothing is fetched
at run time.

The format, as these files use it:
- `#` starts a comment line; blank lines separate records;
- `[name = value]` (or a bare `[P-256,SHA-256]`) lines are group headers: consecutive
  headers form one group, and a header after records starts a new group;
- `name = value` lines are fields (hex or decimal text, possibly empty); a bare word
  (`FAIL`) is a flag;
- a record starts at the line whose field is the file's first field (`Count`, `COUNT`,
  `SHAAlg`, `Msg`) and ends at the next blank line; fields outside a record belong to the
  group and hold for the records after them (the RSA files' `n`, `p`, `q`, which change
  within a `[mod = ...]` group).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class Vector:
    """One test vector: its file, its group's headers and fields, and its own fields."""

    file: str
    number: int  # the record's position in the file, from 1
    group: dict[str, str]
    fields: dict[str, str]
    flags: frozenset[str] = field(default_factory=frozenset)

    def __getitem__(self, name: str) -> str:
        return self.fields[name] if name in self.fields else self.group[name]

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.fields.get(name, self.group.get(name, default))

    def hex(self, name: str) -> bytes:
        return bytes.fromhex(self[name])

    def describe(self) -> str:
        """Where the vector is, for a failure message: file, record number, group headers
        and the vector's count when it has one."""
        headers = ", ".join(f"{k[1:]} = {v}" if v else k[1:] for k, v in self.group.items()
                            if k.startswith("["))
        count = self.get("Count") or self.get("COUNT")
        return (f"{self.file} record {self.number} [{headers}]"
                + (f" Count {count}" if count is not None else ""))


def read(path: str) -> str:
    """A file of the installed cryptography_vectors package, by its path in the package."""
    return resources.files("cryptography_vectors").joinpath(path).read_text()


def records(path: str, first_field: str) -> Iterator[Vector]:
    """The vectors of the file, in file order, parsed as they are read (a caller that
    needs only the first groups can stop early)."""
    name = path.rsplit("/", 1)[-1]
    number = 0
    group: dict[str, str] = {}
    current: dict[str, str] | None = None
    flags: set[str] = set()
    in_headers = False
    for raw_line in [*read(path).splitlines(), ""]:  # the final "" ends the last record
        line = raw_line.strip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        ends_record = not line or line.startswith("[") or key == first_field
        if ends_record and current is not None:
            number += 1
            yield Vector(name, number, dict(group), current, frozenset(flags))
            current, flags = None, set()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            if not in_headers:
                group = {}
            in_headers = True
            key, sep, value = line[1:-1].partition("=")
            # Headers are stored with their bracket, so they never clash with fields.
            group["[" + key.strip()] = value.strip() if sep else ""
            continue
        in_headers = False
        if not sep:
            if current is not None:
                flags.add(line)
        elif key == first_field:
            current = {key: value}
        elif current is None:
            group[key] = value
        else:
            current[key] = value


@cache
def load(path: str, first_field: str) -> tuple[Vector, ...]:
    """Every vector of the file, in file order (parsed once per process)."""
    return tuple(records(path, first_field))


def header(vector: Vector, name: str) -> str:
    """The value of the group header `[name = value]` (or the bare header text for name
    "" ), e.g. header(v, "Taglen") == "128"."""
    if name:
        return vector.group["[" + name]
    return next(k[1:] for k, v in vector.group.items() if k.startswith("[") and not v)
