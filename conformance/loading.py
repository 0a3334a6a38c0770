"""YAML vendor declarations and profiles -> model, with errors that cite file and key.

Every problem is a ConfigError whose one-line message reads
``<file>: <key>: <problem>``; the CLI and the plugin print it and exit with code 2.
"""

from __future__ import annotations

import ctypes
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

from . import modules, names, provisioning, uri
from .model import (
    KeyPolicy,
    KnownDeviation,
    ModuleSpec,
    Observation,
    Profile,
    TokenSpec,
    Value,
    Variants,
    Vendor,
)
from .raw import CKR

SCHEMA = 1
_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_REF = re.compile(r"\$\{([^}]*)\}")

# Bounds on what a file may ask for: a vendor or profile file is a few kilobytes and a
# few levels deep; more is a mistake or an attack on the parser (PyYAML composes nested
# collections recursively).
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32
# Sizes and lengths reach the module as CK_ULONGs.
CK_ULONG_MAX = (1 << 8 * ctypes.sizeof(ctypes.c_ulong)) - 1
MAX_TIMEOUT = 24 * 3600.0  # seconds; the watchdog's timer takes no more (nor inf, nor nan)
MAX_REINITIALIZE_EVERY = 1_000_000
# Key sizes in bits. AES and Camellia keys have three sizes (FIPS 197, RFC 3713); an
# RSA, DSA or Diffie-Hellman modulus above 16384 bits takes a module hours to generate;
# any other key is bounded at 64 KiB, far beyond any real use.
FIXED_KEY_BITS = {"CKM_AES_": (128, 192, 256), "CKM_CAMELLIA_": (128, 192, 256)}
MODULUS_BITS_MAX = 16384
KEY_BITS_MAX = 8 * 65536
# Other parameters: GCM's ulTagBits is at most 128 (v2.40 curr §2.12.3); a PSS salt
# fits in the largest modulus; RSA public exponents are odd and below 2**256 (FIPS 186-4
# §B.3.1).
PARAMETER_MAX = {"tag_bits": 128, "salt_lengths": MODULUS_BITS_MAX // 8,
                 "public_exponents": (1 << 256) - 1}


class ConfigError(Exception):
    """A mistake in a vendor file, a profile or an option, told in one line."""

    def __init__(self, where: str, key: str, problem: str) -> None:
        self.where, self.key, self.problem = where, key, problem
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")


def _package_or_tree(name: str) -> Path:
    """profiles/ and vendors/ ship inside the wheel; in a checkout they sit beside it."""
    packaged = Path(__file__).parent / name
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / name


PROFILES_DIR = _package_or_tree("profiles")
REFERENCE_VENDOR = _package_or_tree("vendors") / "softhsm2.yaml"


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate mapping keys instead of keeping the last."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if not isinstance(key, (str, int, float, bool, type(None))):
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a plain value, not {_kind(key)} "
                f"(line {mark.line + 1})", mark)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {mark.line + 1})", mark)
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _Reader:
    """Walks one parsed YAML document and reports problems with their key path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def fail(self, key: str, problem: str) -> NoReturn:
        raise ConfigError(self.where, key, problem)

    def load(self) -> dict[str, Any]:
        if self.path.suffix not in (".yaml", ".yml"):
            self.fail("", "not a YAML file: name it <id>.yaml")
        try:
            if self.path.stat().st_size > MAX_FILE_BYTES:
                self.fail("", f"larger than {MAX_FILE_BYTES} bytes; not a declaration")
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.fail("", "file not found")
        except (OSError, UnicodeDecodeError) as exc:
            self.fail("", f"cannot read: {exc}")
        try:
            self._depth(text)
            data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            self.fail("", f"not valid YAML: {where}{problem}")
        except ValueError as exc:  # a value the constructor cannot make (an endless number)
            self.fail("", f"not valid YAML: {str(exc).split(';')[0]}")
        if not isinstance(data, dict):
            self.fail("", "expected a mapping at the top level, got "
                      f"{_kind(data)}")
        return data

    def _depth(self, text: str) -> None:
        """Refuse nesting deeper than MAX_DEPTH before the recursive composer sees it
        (the parser's events come from a loop, not recursion)."""
        depth = 0
        for event in yaml.parse(text, Loader=_UniqueKeyLoader):  # noqa: S506 - a SafeLoader
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    where = f"line {mark.line + 1}: " if mark else ""
                    self.fail("", f"{where}nested deeper than {MAX_DEPTH} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1

    def keys(self, data: Mapping[str, Any], prefix: str, required: tuple[str, ...],
             optional: tuple[str, ...]) -> None:
        for key in data:
            if key not in required and key not in optional:
                known = ", ".join(sorted(required + optional))
                self.fail(_join(prefix, str(key)), f"unknown key (known keys: {known})")
        for key in required:
            if key not in data:
                self.fail(_join(prefix, key), "missing required key")

    def typed(self, value: Any, key: str, kind: type, what: str) -> Any:
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            self.fail(key, f"expected {what}, got {_kind(value)}")
        return value

    def string(self, data: Mapping[str, Any], key: str, prefix: str = "") -> str:
        value = self.typed(data[key], _join(prefix, key), str, "a string")
        if not value.strip():
            self.fail(_join(prefix, key), "must not be empty")
        return str(value)

    def mapping(self, value: Any, key: str) -> dict[str, Any]:
        return dict(self.typed(value, key, dict, "a mapping"))

    def names(self, value: Any, key: str, known: frozenset[str] | Mapping[str, Any],
              what: str) -> tuple[str, ...]:
        items = self.typed(value, key, list, f"a list of {what} names")
        for index, item in enumerate(items):
            self.typed(item, f"{key}[{index}]", str, f"a {what} name")
            if item not in known:
                self.fail(f"{key}[{index}]", f"unknown {what} {item!r}{_suggest(item, known)}")
        if len(set(items)) != len(items):
            self.fail(key, "lists a name twice")
        return tuple(items)

    def schema_and_id(self, data: Mapping[str, Any], id_key: str) -> str:
        if data["schema"] != SCHEMA:
            self.fail("schema",
                      f"unsupported schema {data['schema']!r} (this suite reads {SCHEMA})")
        ident = self.string(data, id_key)
        if not _ID.match(ident):
            self.fail(id_key, f"{ident!r} is not a kebab-case id")
        if ident != self.path.stem:
            self.fail(id_key, f"{ident!r} differs from the file name {self.path.stem!r}")
        return ident

    def variants(self, value: Any, key: str) -> Variants:
        table = self.mapping({} if value is None else value, key)
        result: dict[str, tuple[Value, ...]] = {}
        for param, values in table.items():
            where = _join(key, str(param))
            if param not in names.PARAMETERS:
                known = ", ".join(sorted(names.PARAMETERS))
                self.fail(where, f"unknown parameter (known parameters: {known})")
            kind = names.PARAMETERS[param]
            one = {int: "an integer", str: "a string", bool: "true or false"}[kind]
            items = self.typed(values, where, list, f"a list of values ({one} each)")
            allowed = names.ALLOWED_VALUES.get(param)
            for index, item in enumerate(items):
                self.typed(item, f"{where}[{index}]", kind, one)
                if allowed and item not in allowed:
                    self.fail(f"{where}[{index}]",
                              f"unknown value {item!r} (known: {', '.join(allowed)})")
                if kind is int:
                    self.bounded(item, f"{where}[{index}]", param, key)
            if len(set(items)) != len(items):
                self.fail(where, "lists a value twice")
            result[param] = tuple(sorted(items))
        return result

    def bounded(self, item: int, where: str, param: str, mechanism_key: str) -> None:
        """An integer variant within what its parameter (and, for key sizes, the
        mechanism named by the last part of `mechanism_key`) allows."""
        least = 0 if param == "salt_lengths" else 1  # an empty PSS salt is valid
        most = PARAMETER_MAX.get(param, CK_ULONG_MAX)
        if param == "key_sizes":
            name = mechanism_key.rsplit(".", 1)[-1]
            fixed = next((v for p, v in FIXED_KEY_BITS.items() if name.startswith(p)), None)
            if fixed and item not in fixed:
                self.fail(where, f"{item} is not a key size of {name} (one of "
                          f"{', '.join(map(str, fixed))} bits)")
            modulus = "RSA" in name or name.startswith(("CKM_DSA", "CKM_DH_", "CKM_X9_42"))
            most = MODULUS_BITS_MAX if modulus else KEY_BITS_MAX
        if param == "public_exponents" and item % 2 == 0:
            self.fail(where, f"{item} is even; an RSA public exponent is odd")
        if param == "public_exponents":
            least = 3
        if not least <= item <= most:
            self.fail(where, f"must be between {least} and {most}, got {shown(item)}")

    def mechanisms(self, value: Any, key: str) -> dict[str, Variants]:
        table = self.mapping({} if value is None else value, key)
        out = {}
        for mechanism, variants in table.items():
            where = _join(key, str(mechanism))
            if mechanism not in names.MECHANISMS:
                self.fail(where, f"unknown mechanism{_suggest(str(mechanism), names.MECHANISMS)}")
            out[mechanism] = self.variants(variants, where)
        return dict(sorted(out.items()))


def _given(data: Mapping[str, Any], key: str, empty: Any) -> Any:
    """An optional key's value, `empty` when absent or null (a value of the wrong kind,
    even an empty one, is left for the type check to refuse)."""
    value = data.get(key)
    return empty if value is None else value


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "nothing"}.get(
        type(value), type(value).__name__)


def shown(value: Any) -> str:
    """A value for an error line: a huge integer by its length, not its digits."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggest(name: str, known: frozenset[str] | Mapping[str, Any]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def expand_env(value: str, fail: Callable[[str], NoReturn]) -> str:
    """Replace ${VAR} with the environment's value; an unset variable is an error."""
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            fail(f"environment variable {name} is not set")
        return os.environ[name]

    return _ENV_REF.sub(one, value)


# A known deviation is a person's report of understood behaviour: its link is a bug
# report, a pull request, a mailing-list post or a spec passage, never code to read.
_SOURCE_LINK = re.compile(
    r"^https?://(?:github\.com|gitlab\.[^/]+|bitbucket\.org)/[^/]+/[^/]+"
    r"(?:/?$|\.git$|/-?/?(?:blob|tree|raw|commits?|src)/)")
_SOURCE_FILE = re.compile(r"\.(?:c|cc|cpp|cxx|h|hpp|py|rs|go|java)(?:[#?].*)?$")


def source_link_problem(url: str) -> str | None:
    """Why `url` cannot back a known deviation (None when it can)."""
    if _SOURCE_LINK.match(url) or _SOURCE_FILE.search(url):
        return ("links source code or a repository; link the bug report, pull request, "
                "mailing-list post or spec passage that describes the behaviour")
    return None


def _case_patterns(reader: _Reader, value: Any, where: str) -> str | tuple[str, ...]:
    """known_deviations[i].test: one case id pattern, or a list of them."""
    if not isinstance(value, list):
        return reader.string({"test": value}, "test", where)
    if not value:
        reader.fail(f"{where}.test", "must not be an empty list")
    for index, item in enumerate(value):
        if not str(reader.typed(item, f"{where}.test[{index}]", str, "a string")).strip():
            reader.fail(f"{where}.test[{index}]", "must not be empty")
    return tuple(value)


def _observation(reader: _Reader, value: Any, where: str) -> Observation:
    entry = reader.mapping(value, where)
    reader.keys(entry, where, (), ("code", "message"))
    if len(entry) != 1:
        reader.fail(where, "give exactly one of code (a CKR_* name) and message (a pattern)")
    if "code" in entry:
        code = reader.string(entry, "code", where)
        if code not in CKR.values():
            reader.fail(f"{where}.code", f"unknown return value {code!r}"
                        f"{_suggest(code, frozenset(CKR.values()))}")
        return Observation(code=code)
    pattern = reader.string(entry, "message", where)
    try:
        re.compile(pattern)
    except re.error as exc:
        reader.fail(f"{where}.message", f"{pattern!r} is not a regular expression ({exc})")
    return Observation(message=pattern)


def load_vendor(path: str | Path, module_path: str | None = None) -> Vendor:
    """Read a vendor declaration. `module_path` replaces module.path (--module)."""
    reader = _Reader(Path(path))
    data = reader.load()
    reader.keys(data, "", ("schema", "vendor", "title", "module", "token", "claims"),
                ("profiles", "functions", "attributes", "known_deviations",
                 "timeout_seconds", "keys"))
    ident = reader.schema_and_id(data, "vendor")

    module = reader.mapping(data["module"], "module")
    reader.keys(module, "module", ("path",), ("expect_library_version", "init_reserved"))
    raw_path = module_path or reader.string(module, "path", "module")

    def module_fail(problem: str) -> NoReturn:
        reader.fail("module.path", problem)

    try:  # a path, or the name of a module registered with p11-kit
        resolved = Path(modules.resolve(expand_env(raw_path, module_fail)))
    except modules.ModuleNotFound as exc:
        reader.fail("--module" if module_path else "module.path", str(exc))
    expect = module.get("expect_library_version")
    if expect is not None:
        expect = str(reader.typed(expect, "module.expect_library_version", str,
                                  'a quoted version string such as "2.6"'))
        if not re.match(r"^\d+\.\d+$", expect):
            reader.fail("module.expect_library_version", f"{expect!r} is not MAJOR.MINOR")

    reserved = module.get("init_reserved")
    if reserved is not None:
        def reserved_fail(problem: str) -> NoReturn:
            reader.fail("module.init_reserved", problem)

        reserved = expand_env(reader.string(module, "init_reserved", "module"), reserved_fail)

    token = reader.mapping(data["token"], "token")
    reader.keys(token, "token", ("user_pin_env",), ("label", "uri", "so_pin_env", "provision"))
    pin_envs = {}
    for key in ("user_pin_env", "so_pin_env"):
        if key in token:
            pin_envs[key] = reader.string(token, key, "token")
            if not _ENV_NAME.match(pin_envs[key]):  # perhaps the PIN itself: not echoed
                reader.fail(f"token.{key}", "the value (not shown) is not an environment "
                            "variable name (PINs come only from the environment)")
    provision = token.get("provision")
    if provision is not None and (not isinstance(provision, str)
                                  or provision not in provisioning.KINDS):
        reader.fail("token.provision", f"unknown provisioner {shown(provision)} "
                    f"(known: {', '.join(provisioning.KINDS)}; leave it out to use the token "
                    "as is)")
    label, token_uri = _token_name(reader, token, provision, str(resolved))

    deviations = []
    for index, entry in enumerate(reader.typed(_given(data, "known_deviations", []),
                                               "known_deviations", list, "a list")):
        where = f"known_deviations[{index}]"
        entry = reader.mapping(entry, where)
        reader.keys(entry, where, ("test", "url", "reason", "observed"), ())
        url = reader.string(entry, "url", where)
        if not re.match(r"^https?://\S+$", url):
            reader.fail(f"{where}.url", f"{url!r} is not a link (http or https)")
        problem = source_link_problem(url)
        if problem:
            reader.fail(f"{where}.url", f"{url!r} {problem}")
        deviations.append(KnownDeviation(_case_patterns(reader, entry["test"], where), url,
                                         reader.string(entry, "reason", where),
                                         _observation(reader, entry["observed"],
                                                      f"{where}.observed")))

    timeout = data.get("timeout_seconds", 300)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not math.isfinite(timeout) or not 0 < timeout <= MAX_TIMEOUT:
        reader.fail("timeout_seconds", f"expected a positive number of seconds up to "
                    f"{MAX_TIMEOUT:.0f}, got {shown(timeout)}")
    policy = reader.mapping(_given(data, "keys", {}), "keys")
    reader.keys(policy, "keys", (), ("token_objects", "all_usages", "reinitialize_every"))
    for key in ("token_objects", "all_usages"):
        if key in policy:
            reader.typed(policy[key], f"keys.{key}", bool, "true or false")
    every = policy.get("reinitialize_every")
    if every is not None and (isinstance(every, bool) or not isinstance(every, int)
                              or not 1 <= every <= MAX_REINITIALIZE_EVERY):
        reader.fail("keys.reinitialize_every", f"expected a positive number of tests up to "
                    f"{MAX_REINITIALIZE_EVERY}, got {shown(every)}")
    if policy.get("token_objects") and provision is None:
        reader.fail("keys.token_objects", "keys made as token objects need a throwaway token "
                    "(token.provision): the suite leaves them there")
    return Vendor(
        id=ident,
        title=reader.string(data, "title"),
        source=Path(path),
        module=ModuleSpec(str(resolved), expect, reserved),
        token=TokenSpec(label, pin_envs["user_pin_env"], pin_envs.get("so_pin_env"), provision,
                        token_uri),
        profiles=reader.names(_given(data, "profiles", []), "profiles",
                              frozenset(available_profiles()), "profile"),
        functions=frozenset(reader.names(_given(data, "functions", []), "functions",
                                         names.FUNCTIONS, "function")),
        claims=reader.mechanisms(data["claims"], "claims"),
        known_deviations=tuple(deviations),
        timeout=float(timeout),
        attributes=frozenset(reader.names(_given(data, "attributes", []), "attributes",
                                          names.ATTRIBUTES, "attribute")),
        keys=KeyPolicy(**policy),
    )


def _token_name(reader: _Reader, token: Mapping[str, Any], provision: str | None,
                module_path: str) -> tuple[str, uri.PKCS11URI | None]:
    """token.label, or token.uri (RFC 7512) and the label it gives: exactly one of them."""
    if ("label" in token) == ("uri" in token):
        reader.fail("token", "give exactly one of label and uri")
    if "label" in token:
        return reader.string(token, "label", "token"), None
    text = reader.string(token, "uri", "token")
    try:
        parsed = uri.parse(text)
    except uri.URIError as exc:
        reader.fail("token.uri", str(exc))
    if parsed.names_object():
        reader.fail("token.uri", "names an object (object, type or id); a token URI names "
                    "only the token")
    mismatch = modules.uri_module_mismatch(parsed, module_path)
    if mismatch:
        reader.fail("token.uri", mismatch)
    if provision is not None and not parsed.token:
        reader.fail("token.uri", "a throwaway token (provision) needs its label in the URI "
                    "(token=...)")
    return parsed.token or "", parsed


def available_profiles() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PROFILES_DIR.glob("*.yaml"))}


def load_profile(path: str | Path) -> Profile:
    reader = _Reader(Path(path))
    data = reader.load()
    reader.keys(data, "", ("schema", "profile", "title", "source"),
                ("rationale", "functions", "objects", "required", "optional", "areas"))
    ident = reader.schema_and_id(data, "profile")
    if "rationale" in data:
        reader.string(data, "rationale")
    required = reader.mechanisms(data.get("required"), "required")
    optional = reader.mechanisms(data.get("optional"), "optional")
    both = sorted(set(required) & set(optional))
    if both:
        reader.fail(f"optional.{both[0]}", "is also listed under required")
    areas = {}
    for area, suites in reader.mapping(_given(data, "areas", {}), "areas").items():
        items = reader.typed(suites, f"areas.{area}", list, "a list of suite areas")
        areas[str(area)] = tuple(str(s) for s in items)
    return Profile(
        id=ident,
        title=reader.string(data, "title"),
        source=Path(path),
        reference=reader.string(data, "source"),
        functions=frozenset(reader.names(_given(data, "functions", []), "functions",
                                         names.FUNCTIONS, "function")),
        objects=frozenset(reader.names(_given(data, "objects", []), "objects",
                                       names.OBJECT_CLASSES, "object class")),
        required=required,
        optional=optional,
        areas=areas,
    )


def resolve_profile(name: str, where: str = "--profile") -> Profile:
    """A profile by id (from the profiles directory) or by path to its YAML file."""
    if name.endswith((".yaml", ".yml")):
        return load_profile(name)
    known = available_profiles()
    if name not in known:
        raise ConfigError(where, "", f"unknown profile {name!r} "
                          f"(known: {', '.join(known) or 'none'}; in {PROFILES_DIR})")
    return load_profile(known[name])


def profiles_in_effect(vendor: Vendor, selected: list[str] | None) -> tuple[Profile, ...]:
    """--profile options win over the profiles the vendor file declares."""
    if selected:
        return tuple(resolve_profile(name) for name in selected)
    return tuple(resolve_profile(name, f"{vendor.source}: profiles") for name in vendor.profiles)


def writable_directory(path: Path, option: str = "--output") -> Path:
    """Make sure results can be written under `path` before anything runs: it is (or
    becomes) a directory in which a file can be created."""
    if path.exists() and not path.is_dir():
        raise ConfigError(option, "", f"{str(path)!r} is an existing file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(option, "", f"{str(path)!r} is not a writable directory "
                          f"({exc.strerror or exc})") from None
    return path


# ---- results files given to `report`: their shape, checked before anything is written --
# A spec is a type (float: any number), ID (a kebab-case id: it names output
# directories), a tuple of permitted values, a dict of key -> spec ("key?" may be absent;
# "*" any key), a one-item list (a list of those), NONEMPTY (a non-empty list of
# strings) or Maybe(spec) (that, or null).

ID, NONEMPTY = "kebab-case id", "non-empty list"


@dataclass(frozen=True)
class Maybe:
    spec: Any


_MODULE = {"path": str, "manufacturer_id": str, "library_description": str,
           "library_version": str, "cryptoki_version": str}
_CASE = {"id": str, "area": str, "test": str, "status": str, "expected_status": str,
         "message": str, "mechanisms": [str], "functions": [str], "objects": [str],
         "parameters": dict, "requirement": str, "required_by": [str], "applicable": bool,
         "spec": str, "known_deviation": Maybe({"reason": str, "url": str}),
         "duration": float, "between?": [str]}
_VERDICT = {"profile": str, "title": str, "status": ("met", "not met", "incomplete"),
            "required_cases": int, "passed": int, "unchecked": [str], "missing?": [str],
            "failing": [{"requirement": str, "cases": [{"id": str, "status": str,
                                                         "message": str}]}]}
_FINDING = {"rule": str, "area": str, "spec": str, "severity": str, "statuses": {"*": int},
            "cases": int, "observed": NONEMPTY, "link": Maybe(str),
            "deviation_matched": Maybe(bool), "reproduce": str, "example": str}
_COMMON = {"suite": {"version": str, "git_sha?": Maybe(str)}, "start": str, "end": str,
           "profiles": [{"id": ID, "title": str, "sha256": str}]}
VENDOR_RESULTS = {
    "format": int, "summary": {"*": int}, "verdicts": [_VERDICT], "cases": [_CASE],
    "findings": [_FINDING],
    "run_info": {**_COMMON, "vendor": {"id": ID, "title": str, "file": str, "sha256": str},
                 "module": _MODULE, "token": {"label": str, "manufacturer_id": str,
                                              "model": str, "firmware_version": str,
                                              "hardware_version": str},
                 "bindings": {"*": str}, "host": {"platform": str},
                 "mechanisms?": Maybe([str])}}
INTEROP_RESULTS = {
    "format": int, "summary": {"*": int}, "verdicts": [_VERDICT], "cases": [_CASE],
    "run_info": {**_COMMON, "kind": str, "vendor": {"id": ID, "title": str}, "vendors": [ID],
                 "modules?": {"*": {"module": _MODULE}}, "not_run?": {"*": str}}}


def shape_problem(value: Any, spec: Any, where: str = "") -> str | None:
    """Where `value` (parsed JSON) departs from `spec`, in one line (None: it does not)."""
    if isinstance(spec, Maybe):
        return None if value is None else shape_problem(value, spec.spec, where)
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return f"{where or 'the document'}: expected an object, got {_json_kind(value)}"
        for key, inner in spec.items():
            name = key.rstrip("?")
            if name != "*" and name not in value:
                if key.endswith("?"):
                    continue
                return f"{_join(where, name)}: missing"
            for member, item in value.items() if name == "*" else [(name, value[name])]:
                problem = shape_problem(item, inner, _join(where, str(member)))
                if problem:
                    return problem
        return None
    if isinstance(spec, list) or spec is NONEMPTY:
        if not isinstance(value, list) or spec is NONEMPTY and not value:
            return f"{where}: expected a {'non-empty ' if spec is NONEMPTY else ''}list, " \
                   f"got {_json_kind(value)}"
        for index, item in enumerate(value):
            problem = shape_problem(item, str if spec is NONEMPTY else spec[0],
                                    f"{where}[{index}]")
            if problem:
                return problem
        return None
    if isinstance(spec, tuple):
        return None if value in spec else \
            f"{where}: expected one of {', '.join(spec)}, got {shown(value)}"
    if spec is ID:
        return None if isinstance(value, str) and _ID.match(value) else \
            f"{where}: {shown(value)} is not a kebab-case id"
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if spec is float and number or spec is not float and isinstance(value, spec) and not (
            spec is int and isinstance(value, bool)):
        return None
    return f"{where}: expected {_kind(spec())}, got {_json_kind(value)}"


def _json_kind(value: Any) -> str:
    return "null" if value is None else _kind(value)
