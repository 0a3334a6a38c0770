"""The onboarding commands of `pkcs11-conformance`: probe, modules, explain.

cli.py adds them to its parser and hands their arguments here. Mistakes raise ConfigError,
which the CLI prints as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import modules, probe
from .explain import explain
from .loading import ConfigError

COMMANDS = ("probe", "modules", "explain")


def add_commands(commands: Any) -> None:
    """Add the subcommands to the CLI's subparsers."""
    found = commands.add_parser(
        "probe", help="show a module's identity and mechanisms; draft a vendor file",
        description="Load the module (in this process, through the ctypes layer), print "
                    "C_GetInfo, the slots and tokens (with their PKCS#11 URIs) and every "
                    "advertised mechanism, flag suspicious mechanism information, and with "
                    "-o write a draft vendor file that claims nothing until you uncomment "
                    "its lines.")
    found.add_argument("--module", metavar="PATH|NAME",
                       help="the module library, or a name from `pkcs11-conformance modules`")
    found.add_argument("--token", metavar="LABEL|URI",
                       help="the token to probe, by label or PKCS#11 URI (default: the only "
                            "initialized token)")
    found.add_argument("--init-reserved", metavar="STRING",
                       help="the C_Initialize pReserved string the module needs (NSS "
                            "softokn: configdir='sql:DIR' ...), as module.init_reserved")
    found.add_argument("-o", "--output", metavar="FILE",
                       help="write the draft vendor file here (<vendor-id>.yaml; - for "
                            "standard output)")
    commands.add_parser(
        "modules", help="list the PKCS#11 modules registered with p11-kit",
        description="The modules p11-kit's configuration registers (user, system and "
                    "package config directories), by name: --module NAME takes these names.")
    about = commands.add_parser(
        "explain", help="what a check enforces and why a module may fail it",
        description="Print a check's spec clause, what it checks, its markers and why a "
                    "module may fail it.")
    about.add_argument("test", metavar="TEST-ID",
                       help="a case id (area/test_file.py::test_name[...]) or a test name")


def run(args: argparse.Namespace) -> int:
    if args.command == "probe":
        shown, draft = probe.run(args.module, args.token, args.output, args.init_reserved)
        if args.output == "-":
            print(shown, file=sys.stderr)
            print(draft, end="")
            return 0
        print(shown)
        if draft is None:
            print("No draft written: give -o <vendor-id>.yaml to write one.")
        else:
            try:
                Path(args.output).write_text(draft, encoding="utf-8")
            except OSError as exc:
                raise ConfigError("-o", "", f"cannot write {args.output!r}: {exc}") from None
            print(f"Draft vendor file: {args.output} (it claims nothing yet: edit it, then "
                  f"`pkcs11-conformance run {args.output}`)")
        return 0
    if args.command == "modules":
        print(listing())
        return 0
    print(explain(args.test))
    return 0


def listing() -> str:
    """The registered modules, one block each, and where they were looked for."""
    found = modules.registered()
    module_dir = modules.default_module_dir()
    lines = [f"PKCS#11 modules registered with p11-kit (config directories: "
             f"{', '.join(map(str, modules.config_dirs()))}; relative module names resolve "
             f"in {module_dir or 'an unknown directory'})"]
    if not found:
        lines.append("  none")
    for name, entry in found.items():
        path = entry.path
        state = "" if path is None or Path(path).is_file() else "  (file missing)"
        lines.append(f"  {name}: {path or '(no module: setting)'}{state}")
        lines.append(f"      config: {', '.join(map(str, entry.files))}")
        for key in ("enable-in", "disable-in"):
            if entry.words(key):
                lines.append(f"      {key}: {', '.join(entry.words(key))}")
        if "x-init-reserved" in entry.settings:
            lines.append(f"      x-init-reserved: {entry.settings['x-init-reserved']}")
    return "\n".join(lines)
