"""The pytest plugin of interop runs (`--interop A.yaml --interop B.yaml ...`).

Every process (the controller and each xdist worker) opens every module given, each on
its own throwaway token as its vendor file says, and logs in once. The controller decides
which modules take part (one that is not installed is "not run"), so all processes
collect the same cases; a crashing or hanging module costs one case (CRASH or TIMEOUT)
through the same worker machinery as the conformance run.

A case is decided by the outcome rule of each side: it runs when both modules claim what
it needs (the mechanism with the parameter values, and the functions), and is skipped
with the reason otherwise. A known deviation of either vendor file that matches the case
id makes it an expected failure, with its link.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pkcs11.exceptions import PKCS11Error

from .. import keypolicy, provisioning, results
from ..crosscheck import Keys
from ..loading import ConfigError, load_vendor
from ..model import Decision, Value, Vendor, decide
from ..plugin import PAYLOAD, Recorder, deviation_payload, make_run_dir, watch_time
from ..target import Secret, Target, TargetError, WrongPin, open_target

TESTS_DIR = Path(__file__).parent
# Set by the controller for its workers: which vendors take part, and the environment each
# vendor's shared token was made in (its PIN variables are the same names for every
# vendor file, so a worker restores them before it opens a module whose token it reuses).
VENDORS_ENV = "PKCS11_CONFORMANCE_INTEROP_VENDORS"
SIDE_ENV = "PKCS11_CONFORMANCE_INTEROP_ENV_"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pkcs11-conformance interop")
    group.addoption("--interop", action="append", metavar="FILE",
                    help="vendor declaration to take part in an interop run (repeatable)")
    group.addoption("--interop-results", metavar="FILE", default="reports/interop/results.json",
                    help="results JSON of the interop run (default: %(default)s)")


@dataclass
class Side:
    """One module as this process opened it, for the interop tests."""

    vendor: Vendor
    target: Target
    # The environment its token was made in, where client tools run: never printed (it
    # holds the PINs, as Secret, and whatever else the caller's environment holds).
    env: dict[str, str] = field(repr=False)
    kept: dict[Any, Any] = field(default_factory=dict)  # what tests share, per module
    created: list[Any] = field(default_factory=list)  # token objects to destroy at the end
    _keys: Keys | None = None

    @property
    def id(self) -> str:
        return self.vendor.id

    @property
    def session(self) -> Any:
        return self.target.login_session()

    @property
    def keys(self) -> Keys:
        if self._keys is None:
            self._keys = Keys(self.session)
        return self._keys

    def policy(self) -> AbstractContextManager[None]:
        """Make keys on this module as its vendor file's `keys` policy says."""
        return keypolicy.applied(self.vendor.keys)

    def once(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self.kept:
            with self.policy():
                self.kept[key] = make()
        return self.kept[key]

    @property
    def loadable(self) -> str:
        """The library a client should load: the module, or the forwarder that gives it its
        C_Initialize arguments (through `env`)."""
        return str(self.target.lib.so)

    def close(self) -> None:
        for obj in reversed(self.created):
            try:
                obj.destroy()
            except PKCS11Error as exc:  # noqa: PERF203 - reported, the rest still go
                sys.stderr.write(f"pkcs11-conformance: {self.id}: could not destroy a "
                                 f"token object it made: {exc!r}\n")
        self.target.close()


@dataclass
class InteropRun:
    vendors: dict[str, Vendor]  # the modules taking part, in the order given
    not_run: dict[str, str]  # vendor id -> why it does not take part
    sides: dict[str, Side]
    results_path: Path
    started: float


INTEROP = pytest.StashKey[InteropRun]()


def _controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "interop_case(payload): the case's metadata")
    files = config.getoption("interop")
    if not files:
        return
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(TESTS_DIR)]
    make_run_dir(config)
    vendors, not_run = _vendors(config, [Path(f) for f in files])
    sides: dict[str, Side] = {}
    try:
        for vendor in list(vendors.values()):
            try:
                sides[vendor.id] = _open(vendor)
            except TargetError as exc:
                if not _controller(config) or len(files) == 1 or isinstance(exc, WrongPin):
                    raise
                not_run[vendor.id] = str(exc)
                del vendors[vendor.id]
    except TargetError as exc:
        for side in sides.values():
            side.close()
        pytest.exit(f"pkcs11-conformance: {exc}", returncode=2)
    if _controller(config):
        os.environ[VENDORS_ENV] = json.dumps(list(vendors))
    config.stash[INTEROP] = InteropRun(vendors, not_run, sides,
                                       Path(config.getoption("interop_results")), time.time())
    watch_time(config, max(v.timeout for v in vendors.values()) if vendors else 300.0)
    if _controller(config):
        config.pluginmanager.register(Recorder(), "pkcs11-conformance-interop-recorder")


def _vendors(config: pytest.Config, files: list[Path]) -> tuple[dict[str, Vendor],
                                                                 dict[str, str]]:
    """The vendor files, checked; with several, a module not installed here is "not run".
    Workers take the controller's list, so every process collects the same cases."""
    vendors: dict[str, Vendor] = {}
    not_run: dict[str, str] = {}
    chosen = json.loads(os.environ[VENDORS_ENV]) if not _controller(config) else None
    for path in files:
        try:
            vendor = load_vendor(path)
        except ConfigError as exc:
            if len(files) == 1 or exc.key != "module.path":
                pytest.exit(f"pkcs11-conformance: {exc}", returncode=2)
            not_run[path.stem] = str(exc)
            continue
        if vendor.id in vendors:
            pytest.exit(f"pkcs11-conformance: {path}: vendor {vendor.id!r} is given twice",
                        returncode=2)
        missing = vendor.token.provision and provisioning.KINDS[vendor.token.provision].missing()
        if missing and len(files) > 1:
            not_run[vendor.id] = f"{path}: token.{missing}"
            continue
        twin = next((v for v in vendors.values()
                     if os.path.realpath(v.module.path) == os.path.realpath(vendor.module.path)),
                    None)
        if twin is not None:  # dlopen gives the one instance, initialized for the first
            pytest.exit(f"pkcs11-conformance: {path}: module.path: {vendor.module.path} is "
                        f"also the module of vendor {twin.id}; a process loads a library "
                        "once, so an interop run takes each module once (for two tokens of "
                        "one module, give one vendor file a copy of the library)", returncode=2)
        if chosen is None or vendor.id in chosen:
            vendors[vendor.id] = vendor
    return vendors, not_run


def _open(vendor: Vendor) -> Side:
    """Provision, load and log in to one module, and keep the environment it was made in.
    Modules read their configuration (and the suite the PIN) from the environment, and
    every vendor file may use the same variable names: so each module is opened and
    logged in before the next one changes them."""
    saved_as = SIDE_ENV + vendor.id.upper().replace("-", "_")
    saved = os.environ.get(saved_as)
    if saved:  # a worker reusing the controller's shared token: its PINs, its daemons
        os.environ.update(json.loads(saved))
    before = dict(os.environ)
    target = open_target(vendor)
    try:
        target.login_session()
    except TargetError:
        target.close()
        raise
    env = dict(os.environ)
    changed = {k: v for k, v in env.items() if before.get(k) != v}
    if saved is None:
        os.environ[saved_as] = json.dumps(changed)
    for name in filter(None, (vendor.token.user_pin_env, vendor.token.so_pin_env)):
        if name in env:
            env[name] = Secret(env[name])
    return Side(vendor, target, env)


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(INTEROP, None)
    if run is not None:
        for side in run.sides.values():
            side.close()


# ---- planning: which cases exist and what each needs -------------------------------------

@dataclass(frozen=True)
class Needs:
    """What each side must claim for a case to run, beyond the mechanism under test."""

    source: tuple[str, ...] = ()  # C_* functions and CKM_* prerequisite mechanisms
    destination: tuple[str, ...] = ()
    both: tuple[str, ...] = ()


def routes(config: pytest.Config) -> list[tuple[Vendor, Vendor]]:
    run = config.stash.get(INTEROP, None)
    if run is None:
        return []
    return [(a, b) for a, b in itertools.permutations(run.vendors.values(), 2)]


def _decide_side(vendor: Vendor, case_id: str, mechanism: str | None,
                 parameters: Mapping[str, Value], needs: Sequence[str]) -> Decision:
    mechanisms = tuple(n for n in needs if n.startswith("CKM_"))
    functions = tuple(n for n in needs if n.startswith("C_"))
    subject = (mechanism,) if mechanism else ()
    return decide(vendor, (), case_id, subject + mechanisms, functions,
                  parameters if mechanism else {})


def _case(metafunc: pytest.Metafunc, ident: str, between: Sequence[Vendor],
          mechanism: str | None, parameters: Mapping[str, Value],
          needs: Sequence[Sequence[str]], skip: str | None = None) -> dict[str, Any]:
    """The payload of one case and its decision (run, skip, or expected to fail)."""
    path = Path(str(metafunc.definition.path))
    area = path.stem.removeprefix("test_")
    case_id = f"{area}/{path.name}::{metafunc.definition.name}[{ident}]"
    reason, deviation = skip, None
    for vendor, wanted in zip(between, needs, strict=True):
        decision = _decide_side(vendor, case_id, mechanism, parameters, wanted)
        if reason is None and decision.action != "run":
            reason = decision.reason
        deviation = deviation or decision.deviation
    doc = (metafunc.function.__doc__ or "").strip()
    flat = sorted({n for wanted in needs for n in wanted})
    return {
        "id": case_id, "area": area, "test": metafunc.definition.name,
        "mechanisms": [mechanism] * bool(mechanism) + [n for n in flat if n.startswith("CKM_")],
        "functions": [n for n in flat if n.startswith("C_")], "objects": [],
        "parameters": dict(parameters), "spec": doc.split(":")[0] if doc else "",
        "requirement": "optional", "required_by": [],
        "action": "skip" if reason else "run", "reason": reason or "",
        "expected_status": "SKIP" if reason else "FAIL" if deviation else "PASS",
        "known_deviation": deviation_payload(deviation),
        "between": [v.id for v in between],
    }


def _param(values: Sequence[Any], ident: str, payload: dict[str, Any]) -> Any:
    marks = [pytest.mark.interop_case(payload)]
    if payload["action"] == "skip":  # a known deviation is judged by conformance.plugin
        marks.append(pytest.mark.skip(reason=payload["reason"]))
    return pytest.param(*values, marks=marks, id=ident)


def _ident(parameters: Mapping[str, Value]) -> str:
    return "-".join(f"{k}={v}" for k, v in parameters.items())


def parametrize_routes(metafunc: pytest.Metafunc, subjects: Mapping[str, Sequence[str]],
                       needs: Callable[[str], Needs],
                       extra: Sequence[tuple[str, Mapping[str, Value]]] = ()) -> None:
    """Parametrize `route`, `mechanism` and `variant` over every ordered pair of modules
    and every mechanism in `subjects` (name -> the parameters that vary, such as
    key_sizes) either side claims. The variants are the values both claim; `extra` adds
    fixed variations (name, values) crossed with each, such as unwrap templates."""
    params = []
    for source, destination in routes(metafunc.config):
        route = f"{source.id}->{destination.id}"
        for mechanism, varying in subjects.items():
            claimed = [v for v in (source, destination) if mechanism in v.claims]
            if not claimed:
                continue
            need = needs(mechanism)
            sides_needs = (need.source + need.both, need.destination + need.both)
            combos: list[dict[str, Value]] = [{}]
            skip = None
            if len(claimed) == 2:
                columns = []
                for key in varying:
                    common = sorted(set(source.claims[mechanism].get(key, ()))
                                    & set(destination.claims[mechanism].get(key, ())),
                                    key=lambda v: (str(type(v)), v))
                    if not common:
                        skip = (f"{source.id} and {destination.id} claim no common "
                                f"{key} for {mechanism}")
                        break
                    columns.append([(key, v) for v in common])
                else:
                    combos = [dict(c) for c in itertools.product(*columns)]
            for combo in combos:
                for label, fixed in extra or [("", {})]:
                    variant = {**combo, **fixed}
                    ident = "-".join(filter(None, [route, mechanism, _ident(combo), label]))
                    payload = _case(metafunc, ident, (source, destination),
                                    mechanism, combo, sides_needs, skip)
                    params.append(_param(((source.id, destination.id), mechanism, variant),
                                         ident, payload))
    metafunc.parametrize(["route", "mechanism", "variant"], params)


def parametrize_vendors(metafunc: pytest.Metafunc,
                        plan: Callable[[Vendor], tuple[str | None, Mapping[str, Value],
                                                       tuple[str, ...], str | None]]) -> None:
    """Parametrize `vendor_id` (and `variant`) over every module: `plan(vendor)` gives
    the mechanism the case uses, its parameter values, what else the module must claim,
    and a reason to skip when the case cannot apply."""
    run = metafunc.config.stash.get(INTEROP, None)
    params = []
    for vendor in (run.vendors.values() if run else ()):
        mechanism, variant, needs, skip = plan(vendor)
        payload = _case(metafunc, vendor.id, (vendor,), mechanism, variant, (needs,), skip)
        params.append(_param((vendor.id, dict(variant)), vendor.id, payload))
    metafunc.parametrize(["vendor_id", "variant"], params)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if INTEROP not in config.stash:
        return
    for item in items:
        marker = item.get_closest_marker("interop_case")
        if marker is not None:
            item.user_properties.append((PAYLOAD, json.dumps(marker.args[0])))


# ---- fixtures -------------------------------------------------------------------------

@pytest.fixture
def interop_run(request: pytest.FixtureRequest) -> InteropRun:
    return request.config.stash[INTEROP]


@pytest.fixture
def sides(interop_run: InteropRun, route: tuple[str, str]) -> Iterator[tuple[Side, Side]]:
    """(source, destination): the modules a pairwise case moves keys or data between.
    Afterwards, whatever operation the case left active in either shared session ends."""
    pair = (interop_run.sides[route[0]], interop_run.sides[route[1]])
    yield pair
    for side in pair:
        side.target.end_operations()


@pytest.fixture
def side(interop_run: InteropRun, vendor_id: str) -> Iterator[Side]:
    one = interop_run.sides[vendor_id]
    yield one
    one.target.end_operations()


# ---- results ------------------------------------------------------------------------

def _run_info(run: InteropRun, config: pytest.Config) -> dict[str, Any]:
    modules = {}
    for vendor_id, side in run.sides.items():
        info = side.target.info()
        modules[vendor_id] = {"title": side.vendor.title, "file": results.shown(side.vendor.source),
                              "module": info["module"], "token": info["token"]}
    return {
        "kind": "interop", "suite": results.suite_info(),
        "vendor": {"id": "interop", "title": "Interoperability between modules and clients"},
        "vendors": list(run.vendors), "modules": modules, "not_run": run.not_run,
        "profiles": [], "bindings": results.binding_versions(), "host": results.host_info(),
        "arguments": results.shown_arguments(config.invocation_params.args),
        "start": results.iso(run.started), "end": results.iso(time.time()),
    }


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    run = config.stash.get(INTEROP, None)
    recorder = config.pluginmanager.get_plugin("pkcs11-conformance-interop-recorder")
    if run is None or recorder is None or not run.vendors:
        return
    records = results.finish_records(recorder.cases)
    results.write(run.results_path, _run_info(run, config), records)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = config.stash.get(INTEROP, None)
    if run is None or not _controller(config) or not run.results_path.exists():
        return
    from .report import matrix_lines  # noqa: PLC0415

    terminalreporter.write_sep("=", "pkcs11-conformance interop")
    terminalreporter.write_line(f"results: {run.results_path}")
    for line in matrix_lines(results.load(run.results_path)):
        terminalreporter.write_line(line)

