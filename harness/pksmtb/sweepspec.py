"""Sweep specs: TOML in, validated Spec, its cells and its jobs out.

A sweep spec (TOML) names scenarios, variants, grid axes and repeats:

    [sweep]
    name = "probation"                  # default: the file's stem
    description = "..."
    scenarios = ["pksm-merge"]          # names (harness/scenarios) or .toml
                                        # paths, relative to the spec file
    variants = ["pksm"]                 # default: each scenario's own
    repeats = 5
    timeout = 300                       # optional: per boot (--timeout)
    alpha = 0.05                        # the tests' level (paired t, Welch, Holm, BH)
    metrics = ["peak_saved_mib", "t90_s"]   # optional (default: METRICS below)
    cow_cost_us = 1.5                   # a COW break's cost, for 'objective'

    [grid]                              # the cells: every combination
    "pksm.probation_scans" = [0, 1, 2, 3, 5, 8]
    daemon = ["on", "off"]              # the merge daemon: off is
                                        # pksm.enabled=0 on pksm, ksm.run=0 on ksm
    vcpus = [1, 2]                      # the guest's vCPUs (--set vcpus=N)
    "workload.domains" = [2, 4]         # an option of the scenarios' real
                                        # programs (--set workload.NAME=V)

    [baseline]                          # what each cell is compared with: the
    "pksm.probation_scans" = 3          # cell with these coordinates, the
                                        # others its own

    [configs.zswap]                     # optional: named configurations, an
    kernel_args = ["pksm.enabled=0"]    # axis 'config' of their names in this
    [configs.full]                      # order (before the grid's axes); each
    "pksm.swap_dedup" = 1               # its knobs and kernel arguments
                                        # ([baseline] config = "zswap")

A spec can also be built or changed as objects: override() gives a
checked copy with other repeats or vCPU counts (a bench's --repeat and
--vcpus), recorded in Spec.overrides.  metrics may name the registered
metric functions (pksmtb/metrics) beside the run's own figures.

Everything is checked before anything boots (ConfigError): the spec's
keys, each scenario with each cell's settings (runner.scenario_of), every
knob against the variant's kernel (knobs.py), the baseline against the
grid; the kernels must be built (kernel.BuildMissing).
"""

from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import config, kernel, knobs, metrics, paths, runner

DAEMON_AXIS = "daemon"
DAEMON_VALUES = ("on", "off")
VCPUS_AXIS = "vcpus"
CONFIG_AXIS = "config"
# Axes that are not knobs: their names stay as they are.
PLAIN_AXES = (DAEMON_AXIS, VCPUS_AXIS, CONFIG_AXIS)
# The figures reported by default (sweepreport.run_figures has them all).
METRICS = ["peak_saved_mib", "saved_fraction", "t90_s", "daemon_cpu_s", "cow_breaks",
           "saved_mib_s", "throughput", "wall_s"]
# The figures a run has besides the registered metrics (metrics.known()):
# summary.json's (sampling.summarize, runner) and sweepreport.run_figures'
# own, which depend on the spec's cow_cost_us.
KNOWN_METRICS = ("peak_saved_mib", "peak_saved_pages", "saved_fraction", "achievable_pages",
                 "t50_s", "t90_s", "daemon_cpu_s", "daemon_busy_s", "daemon_cpu_ticks_s",
                 "full_scans_delta",
                 "pages_scanned_delta", "duration_s", "samples", "wall_s",
                 "cost_cpu_s", "objective")
_SLUG = re.compile(r"[^A-Za-z0-9_.=+-]")


@dataclass(frozen=True)
class Settings:
    """A named configuration ([configs.NAME]): knobs and kernel arguments."""

    sets: tuple[str, ...]               # knob=value, as --set takes them
    kernel_args: tuple[str, ...]

    def to_json(self) -> dict[str, list[str]]:
        return {"sets": list(self.sets), "kernel_args": list(self.kernel_args)}


@dataclass
class Spec:
    name: str
    path: Path
    description: str
    scenarios: list[str]
    variants: list[str]                  # empty: each scenario's own
    repeats: int
    axes: dict[str, list[str]]           # grid: axis -> values (as knob text)
    baseline: dict[str, str]
    metrics: list[str]
    alpha: float = 0.05
    timeout: float | None = None
    cow_cost_us: float = 0.0
    configs: dict[str, Settings] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)   # override()'s changes


@dataclass(frozen=True)
class Cell:
    """One point of the grid: its coordinates, in axis order."""

    coords: tuple[tuple[str, str], ...]

    def get(self, axis: str) -> str:
        return dict(self.coords)[axis]

    @property
    def scenario(self) -> str:
        return self.get("scenario")

    @property
    def variant(self) -> str:
        return self.get("variant")

    @property
    def id(self) -> str:
        """A directory name: scenario.variant.axis=value..."""
        parts = [Path(self.scenario).stem, self.variant]
        parts += [f"{k.split('.')[-1]}={v}" for k, v in self.coords[2:]]
        return _SLUG.sub("_", ".".join(parts))

    @property
    def label(self) -> str:
        knobs_ = " ".join(f"{k}={v}" for k, v in self.coords[2:])
        return f"{Path(self.scenario).stem}/{self.variant}" + (f" {knobs_}" if knobs_ else "")

    def to_json(self) -> dict[str, str]:
        return dict(self.coords)


@dataclass(frozen=True)
class Job:
    """One boot of a cell: picklable, handed to a process pool or Dask."""

    cell: Cell
    repeat: int                           # 1..repeats
    scenario_path: str
    sets: tuple[str, ...]
    kernel_args: tuple[str, ...]
    root: str                             # its results root (run directories)
    timeout: float | None

    @property
    def key(self) -> str:
        return f"{self.cell.id}/r{self.repeat}"

    def request(self) -> runner.RunRequest:
        return runner.RunRequest(self.scenario_path, variant=self.cell.variant,
                                 sets=list(self.sets), kernel_args=list(self.kernel_args),
                                 timeout=self.timeout, results=Path(self.root),
                                 progress=False)


# ---- the spec -------------------------------------------------------------------

def _str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise config.ConfigError(f"{where}: expected a list of strings, got {value!r}")
    if not value:
        raise config.ConfigError(f"{where}: empty list")
    return list(value)


def resolve_scenario(name: str, spec_dir: Path) -> str:
    """A scenario name stays a name; a path is made relative to the spec's directory."""
    if name.endswith(".toml") or "/" in name:
        p = Path(name)
        if not p.is_absolute() and not p.is_file():
            p = spec_dir / p
        return str(p.resolve())
    return name


def parse_spec(data: dict[str, Any], path: Path) -> Spec:
    where = str(path)
    unknown = sorted(set(data) - {"sweep", "grid", "baseline", "configs"})
    if unknown:
        raise config.ConfigError(f"{where}: unknown table(s) {', '.join(unknown)} "
                                 "(allowed: sweep, grid, baseline, configs)")
    head = data.get("sweep")
    if not isinstance(head, dict):
        raise config.ConfigError(f"{where}: needs a [sweep] table")
    w = f"{where} [sweep]"
    allowed = {"name", "description", "scenarios", "variants", "repeats", "timeout",
               "alpha", "metrics", "cow_cost_us"}
    bad = sorted(set(head) - allowed)
    if bad:
        raise config.ConfigError(f"{w}: unknown key(s) {', '.join(bad)} "
                                 f"(allowed: {', '.join(sorted(allowed))})")
    name = head.get("name", path.stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise config.ConfigError(f"{w}.name: letters, digits, '_', '.', '-', got {name!r}")
    desc = head.get("description", "")
    if not isinstance(desc, str):
        raise config.ConfigError(f"{w}.description: expected a string")
    if "scenarios" not in head:
        raise config.ConfigError(f"{w}: needs scenarios = [\"...\"]")
    scenarios = [resolve_scenario(s, path.parent)
                 for s in _str_list(head["scenarios"], f"{w}.scenarios")]
    variants = _str_list(head["variants"], f"{w}.variants") if "variants" in head else []
    for v in variants:
        if v not in paths.VARIANTS:
            raise config.ConfigError(f"{w}.variants: {v!r} is not one of "
                                     f"{', '.join(paths.VARIANTS)}")
    repeats = head.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= 100:
        raise config.ConfigError(f"{w}.repeats: a whole number 1..100, got {repeats!r}")
    timeout = head.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not 5 <= timeout <= 7200):
        raise config.ConfigError(f"{w}.timeout: 5..7200 seconds, got {timeout!r}")
    alpha = head.get("alpha", 0.05)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise config.ConfigError(f"{w}.alpha: a level between 0 and 1, got {alpha!r}")
    metrics_ = (_str_list(head["metrics"], f"{w}.metrics") if "metrics" in head
                else list(METRICS))
    for m in metrics_:
        if m not in KNOWN_METRICS and m not in metrics.known():
            raise config.ConfigError(f"{w}.metrics: unknown figure {m!r} (known: "
                                     f"{', '.join([*KNOWN_METRICS, *metrics.known()])})")
    cow_cost = head.get("cow_cost_us", 0.0)
    if isinstance(cow_cost, bool) or not isinstance(cow_cost, (int, float)) or \
            not 0 <= cow_cost <= 1e6:
        raise config.ConfigError(f"{w}.cow_cost_us: microseconds, 0..1e6, got {cow_cost!r}")
    grid = data.get("grid", {})
    if not isinstance(grid, dict):
        raise config.ConfigError(f"{where}: [grid] must be a table of axis = [values]")
    configs = parse_configs(data.get("configs", {}), where)
    axes: dict[str, list[str]] = {CONFIG_AXIS: list(configs)} if configs else {}
    for axis, values in grid.items():
        wa = f"{where} [grid].{axis}"
        if not isinstance(values, list):
            raise config.ConfigError(f"{wa}: expected a list of values, got {values!r}")
        if not values:
            raise config.ConfigError(f"{wa}: empty: the grid would have no cells")
        texts = [config.knob_value(v, wa) for v in values]
        if len(set(texts)) != len(texts):
            raise config.ConfigError(f"{wa}: a value appears twice: {values!r}")
        if axis == DAEMON_AXIS:
            for t in texts:
                if t not in DAEMON_VALUES:
                    raise config.ConfigError(f"{wa}: {t!r} is not one of "
                                             f"{', '.join(DAEMON_VALUES)}")
        elif axis == VCPUS_AXIS:
            texts = [str(config.parse_vcpus(t, wa)) for t in texts]
        elif axis in ("scenario", "variant"):
            raise config.ConfigError(f"{wa}: scenarios and variants are listed in [sweep]")
        elif axis == CONFIG_AXIS:
            raise config.ConfigError(f"{wa}: configurations are [configs.NAME] tables")
        elif axis.startswith(config.WORKLOAD_PREFIX):
            if not re.fullmatch(r"[a-z][a-z0-9_]*", axis[len(config.WORKLOAD_PREFIX):]):
                raise config.ConfigError(f"{wa}: expected workload.OPTION, an option "
                                         "of the scenarios' real programs")
        else:
            kdir, kname = knobs.split(axis)
            if kdir not in config.KNOB_DIRS or not re.fullmatch(r"[a-z0-9_]+", kname):
                raise config.ConfigError(f"{wa}: not a knob (ksm.NAME or pksm.NAME) "
                                         f"nor '{DAEMON_AXIS}' or '{VCPUS_AXIS}'")
            axis = f"{kdir}.{kname}"
        axes[axis] = texts
    if not axes and len(scenarios) == 1 and len(variants) <= 1:
        raise config.ConfigError(f"{where}: empty grid: no [grid] axis and one scenario "
                                 "and variant; nothing to sweep")
    base = data.get("baseline", {})
    if not isinstance(base, dict):
        raise config.ConfigError(f"{where}: [baseline] must be a table of axis = value")
    baseline: dict[str, str] = {}
    for axis, value in base.items():
        wb = f"{where} [baseline].{axis}"
        if axis == "scenario":
            text = resolve_scenario(str(value), path.parent)
            if text not in scenarios:
                raise config.ConfigError(f"{wb}: {value!r} is not among [sweep].scenarios")
        elif axis == "variant":
            text = str(value)
            if variants and text not in variants:
                raise config.ConfigError(f"{wb}: {value!r} is not among [sweep].variants")
        else:
            key = axis if axis in PLAIN_AXES or axis.startswith(config.WORKLOAD_PREFIX) \
                else "%s.%s" % knobs.split(axis)
            text = config.knob_value(value, wb)
            if key not in axes:
                raise config.ConfigError(f"{wb}: not a [grid] axis "
                                         f"(axes: {', '.join(axes) or 'none'})")
            if text not in axes[key]:
                raise config.ConfigError(f"{wb}: {text!r} is not one of the axis's values "
                                         f"{axes[key]}")
            axis = key
        baseline[axis] = text
    return Spec(name, path, desc, scenarios, variants, repeats, axes, baseline, metrics_,
                float(alpha), float(timeout) if timeout is not None else None,
                float(cow_cost), configs)


def parse_configs(table: Any, where: str) -> dict[str, Settings]:
    """[configs.NAME] tables: each knob = value ("pksm.swap_dedup" = 1)
    and kernel_args = ["..."]; the names in the file's order."""
    if not isinstance(table, dict):
        raise config.ConfigError(f"{where}: [configs] must hold [configs.NAME] tables")
    out: dict[str, Settings] = {}
    for name, body in table.items():
        wc = f"{where} [configs.{name}]"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
            raise config.ConfigError(f"{wc}: a name of letters, digits, '_', '-'")
        if not isinstance(body, dict):
            raise config.ConfigError(f"{wc}: must be a table of knob = value and "
                                     "kernel_args = [...]")
        kargs = body.get("kernel_args", [])
        if kargs != []:
            kargs = _str_list(kargs, f"{wc}.kernel_args")
        sets = []
        for key, value in body.items():
            if key == "kernel_args":
                continue
            if key in PLAIN_AXES or key in ("scenario", "variant"):
                raise config.ConfigError(f"{wc}.{key}: a configuration sets knobs and "
                                         "kernel arguments only")
            kdir, kname = knobs.split(key)
            if kdir not in config.KNOB_DIRS or not re.fullmatch(r"[a-z0-9_]+", kname):
                raise config.ConfigError(f"{wc}.{key}: not a knob (ksm.NAME or pksm.NAME) "
                                         "nor kernel_args")
            sets.append(f"{kdir}.{kname}={config.knob_value(value, f'{wc}.{key}')}")
        out[name] = Settings(tuple(sets), tuple(kargs))
    return out


def override(spec: Spec, repeats: int | None = None, vcpus: list[int] | None = None,
             only: list[str] | None = None) -> Spec:
    """SPEC with other repeats and/or vCPU counts (a bench's --repeat,
    --vcpus) and/or only some of its scenarios, named by file stem (a
    bench's --only), checked as the file's would be; the changes are kept
    in overrides (sweep.json records them, and a resume must ask the
    same)."""
    changes: dict[str, Any] = dict(spec.overrides)
    axes = dict(spec.axes)
    n = spec.repeats
    scenarios = spec.scenarios
    if only is not None:
        stems = {Path(s).stem: s for s in spec.scenarios}
        unknown = [o for o in only if o not in stems]
        if not only or unknown or len(set(only)) != len(only):
            raise config.ConfigError(f"--only: each of {', '.join(stems)} at most once, "
                                     f"got {', '.join(only) or 'nothing'}")
        scenarios = [s for s in spec.scenarios if Path(s).stem in only]
        changes["only"] = sorted(only)
    if repeats is not None:
        if isinstance(repeats, bool) or not 1 <= repeats <= 100:
            raise config.ConfigError(f"--repeat: a whole number 1..100, got {repeats!r}")
        n = changes["repeats"] = repeats
    if vcpus is not None:
        if not vcpus or len(set(vcpus)) != len(vcpus):
            raise config.ConfigError(f"--vcpus: each count once, got {vcpus!r}")
        texts = [str(config.parse_vcpus(v, "--vcpus")) for v in vcpus]
        axes[VCPUS_AXIS] = changes["vcpus"] = texts
        if spec.baseline.get(VCPUS_AXIS) not in (None, *texts):
            raise config.ConfigError(f"--vcpus: the baseline's vcpus "
                                     f"{spec.baseline[VCPUS_AXIS]} is not among {texts}")
    return replace(spec, repeats=n, axes=axes, scenarios=scenarios, overrides=changes)


def load_spec(path: Path) -> Spec:
    if not path.is_file():
        raise config.ConfigError(f"sweep spec {path} not found")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise config.ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse_spec(data, path)


# ---- cells and jobs --------------------------------------------------------------

def cells(spec: Spec) -> list[Cell]:
    """Every combination, scenario and variant first, then the grid's axes.

    Variants default to each scenario's own; a knob axis that the variant
    has no knob for (a pksm.* knob on ksm) is refused by check()."""
    out = []
    for sc_name in spec.scenarios:
        own = config.load_scenario(sc_name).variant
        for variant in spec.variants or [own]:
            for combo in itertools.product(*spec.axes.values()):
                out.append(Cell((("scenario", sc_name), ("variant", variant),
                                 *zip(spec.axes, combo))))
    return out


def settings(cell: Cell, configs: dict[str, Settings] | None = None
             ) -> tuple[list[str], list[str]]:
    """The cell's --set knobs and kernel arguments (CONFIGS: the spec's
    [configs], for a cell with a config coordinate)."""
    configs = configs or {}
    sets: list[str] = []
    kargs: list[str] = []
    for axis, value in cell.coords[2:]:
        if axis == CONFIG_AXIS:
            sets += configs[value].sets
            kargs += configs[value].kernel_args
        elif axis == DAEMON_AXIS:
            if value == "off":
                if cell.variant == "pksm":
                    kargs.append("pksm.enabled=0")
                else:
                    sets.append("ksm.run=0")
        else:
            sets.append(f"{axis}={value}")
    return sets, kargs


def baseline_of(cell: Cell, spec: Spec) -> Cell | None:
    """The cell with the baseline's coordinates and the rest of CELL's."""
    if not spec.baseline:
        return None
    return Cell(tuple((k, spec.baseline.get(k, v)) for k, v in cell.coords))


def jobs(spec: Spec, sweep_dir: Path) -> list[Job]:
    """Repeat-major: every cell's first run, then every cell's second, ...:
    a sweep stopped half way has every cell, and drift spreads evenly."""
    out = []
    for rep in range(1, spec.repeats + 1):
        for c in cells(spec):
            sets, kargs = settings(c, spec.configs)
            out.append(Job(c, rep, c.scenario, tuple(sets), tuple(kargs),
                           str(sweep_dir / "runs" / c.id / f"r{rep}"), spec.timeout))
    return out


def check(spec: Spec, sweep_dir: Path, need_builds: bool = True) -> list[Job]:
    """Every job validated as its run would be, before anything boots."""
    all_jobs = jobs(spec, sweep_dir)
    seen: set[Cell] = set()
    for job in all_jobs:
        if job.cell in seen:
            continue
        seen.add(job.cell)
        where = f"{spec.path}: cell {job.cell.label}"
        for axis, value in job.cell.coords[2:]:
            if axis not in PLAIN_AXES and not axis.startswith(config.WORKLOAD_PREFIX):
                knobs.check(job.cell.variant, axis, value, where)
            elif axis == CONFIG_AXIS:
                for item in spec.configs[value].sets:
                    k, _, v = item.partition("=")
                    knobs.check(job.cell.variant, k, v, f"{where} [configs.{value}]")
        try:
            runner.scenario_of(job.request())
        except config.ConfigError as e:
            raise config.ConfigError(f"{where}: {e}") from None
    if need_builds:
        for variant in sorted({c.variant for c in seen}):
            kernel.find_kernel(variant)
    return all_jobs
