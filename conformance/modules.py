"""PKCS#11 modules registered with p11-kit, and the one place a `--module` value is resolved.

p11-kit reads one config file per module, ``<name>.module``, from three directories:
the user's (``~/.config/pkcs11/modules``), the system's (``/etc/pkcs11/modules``) and the
packages' (``/usr/share/p11-kit/modules``). A name found in an earlier directory wins;
the later files only add the keys it does not set. ``module:`` names the library; a
relative name is found in p11-kit's module directory. Whether the user directory counts
is set by ``user-config`` (none, merge, only) in ``/etc/pkcs11/pkcs11.conf`` and, unless
that says none, in ``~/.config/pkcs11/pkcs11.conf``. This mirrors p11-kit's conf.c.

So wherever the tool takes a module (``--module``, ``module.path``, ``probe``) the value
may be a path to the library or the name of a registered module, e.g. ``softhsm2``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from .uri import PKCS11URI

USER_DIR = "~/.config/pkcs11/modules"
SYSTEM_DIR = Path("/etc/pkcs11/modules")
PACKAGE_DIR = Path("/usr/share/p11-kit/modules")
SYSTEM_CONF = Path("/etc/pkcs11/pkcs11.conf")
USER_CONF = "~/.config/pkcs11/pkcs11.conf"
SUFFIX = ".module"


class ModuleNotFound(LookupError):
    """A --module value that is neither a module file nor a registered module."""


@dataclass(frozen=True)
class Registered:
    """One module as p11-kit sees it after merging its config files."""

    name: str
    settings: dict[str, str]
    files: tuple[Path, ...]  # the config files read, the one that wins first
    module_dir: Path | None = field(default=None, compare=False)

    @property
    def module(self) -> str | None:
        return self.settings.get("module")

    @property
    def path(self) -> str | None:
        """The library, with a relative `module:` resolved in p11-kit's module directory."""
        if not self.module:
            return None
        if os.path.isabs(self.module) or self.module_dir is None:
            return self.module
        return str(self.module_dir / self.module)

    def words(self, key: str) -> tuple[str, ...]:
        """A list setting such as enable-in (comma or blank separated program names)."""
        return tuple(w for w in self.settings.get(key, "").replace(",", " ").split() if w)


def _home(path: str) -> Path:
    """p11-kit expands a leading ~/ with $HOME (then the password database)."""
    return Path(os.path.expanduser(path))


def parse_config(path: Path) -> dict[str, str]:
    """A p11-kit config file: `name: value` lines, # comments, blank lines."""
    settings: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return settings
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, value = line.partition(":")
        if colon:
            settings[name.strip()] = value.strip()
    return settings


def user_config_mode() -> str:
    """none, merge or only: whether the user's module configs count."""
    mode = parse_config(SYSTEM_CONF).get("user-config", "merge")
    if mode != "none":
        mode = parse_config(_home(USER_CONF)).get("user-config", mode)
    return "only" if mode == "override" else mode


def config_dirs() -> list[Path]:
    """The module config directories in p11-kit's order of precedence."""
    mode = user_config_mode()
    dirs = [_home(USER_DIR)] if mode != "none" else []
    return dirs + ([SYSTEM_DIR, PACKAGE_DIR] if mode != "only" else [])


def default_module_dir() -> Path | None:
    """p11-kit's directory for relative `module:` names (set when p11-kit was built):
    from pkg-config when p11-kit's development files are installed, else the usual place
    for this platform."""
    if shutil.which("pkg-config"):
        done = subprocess.run(["pkg-config", "--variable", "p11_module_path", "p11-kit-1"],
                              capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip():
            return Path(done.stdout.strip())
    multiarch = sysconfig.get_config_var("MULTIARCH")
    candidates = [Path("/usr/lib") / multiarch / "pkcs11"] if multiarch else []
    candidates += [Path("/usr/lib64/pkcs11"), Path("/usr/lib/pkcs11")]
    return next((c for c in candidates if c.is_dir()), None)


def registered() -> dict[str, Registered]:
    """Every registered module by name, sorted by name."""
    module_dir = default_module_dir()
    found: dict[str, tuple[dict[str, str], list[Path]]] = {}
    for directory in config_dirs():
        try:
            files = sorted(p for p in directory.iterdir()
                           if p.name.endswith(SUFFIX) and p.is_file())
        except OSError:
            continue
        for path in files:
            settings, sources = found.setdefault(path.name[: -len(SUFFIX)], ({}, []))
            for key, value in parse_config(path).items():
                settings.setdefault(key, value)
            sources.append(path)
    return {name: Registered(name, settings, tuple(files), module_dir)
            for name, (settings, files) in sorted(found.items())}


def resolve(value: str) -> str:
    """A module given as a path (returned unchanged) or as a registered name (returned as
    its library's path). ModuleNotFound says what was tried."""
    if Path(value).is_file():
        return value
    if os.sep in value or (os.altsep and os.altsep in value):
        raise ModuleNotFound(f"module file {value!r} does not exist")
    modules = registered()
    entry = modules.get(value)
    if entry is None:
        known = ", ".join(modules) or "none"
        raise ModuleNotFound(f"{value!r} is neither a module file nor a module registered "
                             f"with p11-kit (registered: {known}; see "
                             "`pkcs11-conformance modules`)")
    if entry.path is None:
        raise ModuleNotFound(f"p11-kit module {value!r} ({entry.files[0]}) has no "
                             "'module:' setting to load")
    if not Path(entry.path).is_file():
        raise ModuleNotFound(f"p11-kit module {value!r} ({entry.files[0]}) names "
                             f"{entry.path!r}, which does not exist")
    return entry.path


def uri_module_mismatch(uri: PKCS11URI, module_path: str) -> str | None:
    """Why a token URI's module-path or module-name does not name this module, or None.

    module-path may name the library or the directory holding it; module-name may be the
    p11-kit name of the module or the library's file name, with or without 'lib' and the
    extension."""
    library = Path(module_path).resolve()
    if uri.module_path is not None:
        given = Path(uri.module_path).resolve()
        if given != library and given != library.parent:
            return (f"module-path {uri.module_path!r} is not the module {module_path!r} "
                    "nor its directory")
    if uri.module_name is not None:
        stem = library.name.split(".")[0]
        names = {library.name, stem, stem.removeprefix("lib")}
        names |= {name for name, entry in registered().items()
                  if entry.path and Path(entry.path).resolve() == library}
        if uri.module_name not in names:
            return f"module-name {uri.module_name!r} does not name the module {module_path!r}"
    return None
