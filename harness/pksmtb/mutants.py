"""Mutation testing of the engine: does the test suite bite?

harness/mutants.toml lists deliberate breakages of PKSM, each a text
replacement in one of PKSM's files, with the tests named as its killers:

    [[mutant]]
    name = "no-recheck"                   # [a-z0-9-]+, unique
    what = "merge without comparing again after write-protect"
    find = "if (!pksm_folios_equal(folio, kfolio))"   # exactly once in pksm/
    replace = "if (0)"
    killers = ["harness/tests/test_engine.py::test_races[pksm]"]
    base = "pksm"                         # optional: the build to start from

For each mutant, run() builds the mutated engine incrementally in an
overlay tree (overlay.py: build/mutants/BASE, the checkout's PKSM files but
the mutated one), runs its killers with pytest against that build
(PKSMTB_KBUILD), and judges: **killed** when at least one killer test
failed; **survived** when every killer passed (the suite does not see this
breakage: a failing result); **stillborn** when the mutant does not build
(the list is wrong: an error).  A killer that errors before it runs (a
missing build, a fixture) kills nothing.

First, unless told not to, a control: the killers against the unmutated
overlay build must all pass, so that a kill is the mutant's doing and not
the overlay's or the host's.

Results go to results/mutants/<UTC>/: results.json (each mutant, its
outcome, the killers' outcomes, timings, the harness revision) and
junit.xml (a case per mutant: killed passes, survived fails, stillborn is
an error).  Exit status: 0 when every mutant was killed, 1 otherwise.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import junit, kernel, overlay, paths, results

SPEC = paths.TOP / "harness" / "mutants.toml"
ROOT = paths.TOP / "build" / "mutants"
OUT = paths.TOP / "results" / "mutants"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_KEYS = {"name", "what", "find", "replace", "killers", "base"}


class MutantError(Exception):
    """A bad mutant list: unknown keys, a pattern found not exactly once, ..."""


@dataclass
class Mutant:
    name: str
    what: str
    find: str
    replace: str
    killers: list[str]
    base: str = "pksm"
    file: str = ""                  # path under pksm/, found from the pattern

    def mutated(self, text: str) -> str:
        return text.replace(self.find, self.replace, 1)


@dataclass
class KillerRun:
    """One pytest run of some killers: each test's outcome."""

    outcomes: dict[str, str] = field(default_factory=dict)   # node id -> pass|fail|error|skip
    exit_code: int = 0
    seconds: float = 0.0
    log: str = ""

    def failed(self) -> list[str]:
        return [k for k, v in self.outcomes.items() if v == "fail"]


def load(path: Path = SPEC) -> list[Mutant]:
    """The mutants of PATH, each located in PKSM's files; MutantError with
    every problem found."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise MutantError(f"{path}: {e}") from None
    problems: list[str] = []
    mutants: list[Mutant] = []
    extra = set(data) - {"mutant"}
    if extra:
        problems.append(f"unknown top-level keys {sorted(extra)}")
    raw = data.get("mutant", [])
    if not isinstance(raw, list) or not raw:
        problems.append("no [[mutant]] entries")
        raise MutantError(f"{path}:\n  " + "\n  ".join(problems))
    files = {rel: f.read_text() for rel, f in overlay.pksm_files().items()
             if f.suffix in (".c", ".h")}
    seen: set[str] = set()
    for i, m in enumerate(raw):
        where = f"mutant {i + 1}"
        if not isinstance(m, dict):
            problems.append(f"{where}: not a table")
            continue
        unknown = set(m) - _KEYS
        missing = {"name", "what", "find", "replace", "killers"} - set(m)
        if unknown or missing:
            problems.append(f"{where}: unknown keys {sorted(unknown)}, missing {sorted(missing)}")
            continue
        name = m["name"]
        where = f"mutant {name!r}"
        if not isinstance(name, str) or not _NAME.match(name) or name in seen:
            problems.append(f"{where}: the name must be [a-z0-9-]+ and unique")
            continue
        seen.add(name)
        strs = [m[k] for k in ("what", "find", "replace")]
        killers = m["killers"]
        if not all(isinstance(s, str) for s in strs) or not m["find"] \
                or m["find"] == m["replace"]:
            problems.append(f"{where}: what, find and replace must be strings, "
                            "find non-empty and different from replace")
            continue
        if not isinstance(killers, list) or not killers \
                or not all(isinstance(k, str) and "::" in k for k in killers):
            problems.append(f"{where}: killers must be a non-empty list of pytest "
                            "node ids (file::test[param])")
            continue
        base = m.get("base", "pksm")
        if not isinstance(base, str) or not base.startswith("pksm"):
            problems.append(f"{where}: base must be a pksm build name")
            continue
        hits = [(rel, text.count(m["find"])) for rel, text in files.items() if m["find"] in text]
        if len(hits) != 1 or hits[0][1] != 1:
            problems.append(f"{where}: 'find' must occur exactly once in PKSM's files; "
                            f"found {sum(n for _, n in hits)} times"
                            + (f" (in {', '.join(r for r, _ in hits)})" if hits else ""))
            continue
        mutants.append(Mutant(name, m["what"], m["find"], m["replace"], list(killers),
                              base, hits[0][0]))
    if problems:
        raise MutantError(f"{path}:\n  " + "\n  ".join(problems))
    return mutants


def junit_outcome(path: Path) -> str:
    """pass|fail|error|skip of the one test in pytest's JUnit XML at PATH:
    a failure element is a failed test; an error element (a fixture, a
    missing build) or no test at all is an error."""
    try:
        cases = list(ET.parse(path).iter("testcase"))
    except (OSError, ET.ParseError):
        return "error"
    if len(cases) != 1:
        return "error"
    kinds = {child.tag for child in cases[0]}
    if "failure" in kinds:
        return "fail"
    if "error" in kinds:
        return "error"
    return "skip" if "skipped" in kinds else "pass"


def run_killers(killers: list[str], kbuild: Path, work: Path,
                first_kill: bool = False) -> KillerRun:
    """pytest on each of KILLERS (one at a time) with the builds of KBUILD;
    FIRST_KILL: stop at the first that fails (the rest are "not run")."""
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PKSMTB_KBUILD=str(kbuild))
    kr = KillerRun()
    t0 = time.monotonic()
    for i, killer in enumerate(killers):
        xml = work / f"killer-{i}.xml"
        xml.unlink(missing_ok=True)
        proc = subprocess.run([sys.executable, "-m", "pytest", "-c", "harness/pytest.ini",
                               "-p", "no:cacheprovider", "-q", f"--junitxml={xml}", killer],
                              cwd=paths.TOP, env=env, capture_output=True, text=True)
        log = proc.stdout + proc.stderr
        (work / f"killer-{i}.log").write_text(f"{killer}\n{log}")
        kr.outcomes[killer] = junit_outcome(xml)
        kr.exit_code = max(kr.exit_code, proc.returncode)
        kr.log += log[-2000:]
        if first_kill and kr.outcomes[killer] == "fail":
            kr.outcomes.update({k: "not run" for k in killers[i + 1:]})
            break
    kr.seconds = time.monotonic() - t0
    return kr


def judge(run: KillerRun) -> str:
    return "killed" if run.failed() else "survived"


def run(mutants: list[Mutant], out: Path, control: bool = True,
        progress: bool = True) -> dict[str, Any]:
    """Build and test every mutant; the results (also written to OUT)."""
    out.mkdir(parents=True, exist_ok=True)
    rec: dict[str, Any] = {"harness_revision": kernel.git_revision(),
                           "started_utc": results.utc_now(), "control": None, "mutants": []}

    def say(msg: str) -> None:
        if progress:
            print(f"mutants: {msg}", flush=True)

    def save() -> None:
        results.write_json(out / "results.json", rec)

    bases = sorted({m.base for m in mutants})
    if control:
        # one record for the control of every base: outcome, each killer's
        # outcome ("BASE: TEST"), seconds; the bases in the order run
        ctl: dict[str, Any] = {"base": "", "outcome": "pass", "killers": {}, "seconds": 0.0}
        for base in bases:
            root = ROOT / base
            overlay.overlay_tree(base, {}, root)
            log = out / f"control-{base}.build.log"
            say(f"control: building {base} unmutated")
            ctl["base"] = f"{ctl['base']}, {base}" if ctl["base"] else base
            rec["control"] = ctl
            if overlay.build(root, base, log) != 0:
                ctl.update(outcome="error",
                           detail=f"the unmutated overlay of {base} does not build: {log}")
                save()
                return rec
            killers = sorted({k for m in mutants if m.base == base for k in m.killers})
            say(f"control: {len(killers)} killers on unmutated {base}")
            kr = run_killers(killers, root / "build" / "kernel", out / f"control-{base}")
            bad = {k: v for k, v in kr.outcomes.items() if v != "pass"}
            ctl["killers"].update({f"{base}: {k}": v for k, v in kr.outcomes.items()})
            ctl["seconds"] = round(ctl["seconds"] + kr.seconds, 1)
            if bad:
                ctl.update(outcome="error",
                           detail=f"killers that do not pass on the unmutated {base} "
                                  f"engine: {bad}; see {out / f'control-{base}'}")
            save()
            if bad:
                return rec
    for m in mutants:
        root = ROOT / m.base
        mdir = out / m.name
        mdir.mkdir(parents=True, exist_ok=True)
        src = overlay.pksm_files()[m.file]
        mutated = mdir / Path(m.file).name
        mutated.write_text(m.mutated(src.read_text()))
        entry: dict[str, Any] = {"name": m.name, "what": m.what, "file": m.file,
                                 "base": m.base, "killers": {}}
        rec["mutants"].append(entry)
        say(f"{m.name}: building ({m.file})")
        t0 = time.monotonic()
        overlay.overlay_tree(m.base, {m.file: mutated}, root)
        rc = overlay.build(root, m.base, mdir / "build.log")
        entry["build_seconds"] = round(time.monotonic() - t0, 1)
        if rc != 0:
            entry.update(outcome="stillborn", detail=f"does not build: {mdir / 'build.log'}")
            say(f"{m.name}: STILLBORN (does not build)")
            save()
            continue
        say(f"{m.name}: {len(m.killers)} killers")
        kr = run_killers(m.killers, root / "build" / "kernel", mdir, first_kill=True)
        entry.update(outcome=judge(kr), killers=kr.outcomes, seconds=round(kr.seconds, 1))
        tests = ", ".join(f"{k.split('::')[-1]} {v}" for k, v in kr.outcomes.items())
        say(f"{m.name}: {entry['outcome'].upper()} ({tests})")
        save()
    # leave the overlays unmutated: the next run builds only what changed
    for base in bases:
        overlay.overlay_tree(base, {}, ROOT / base)
    rec["finished_utc"] = results.utc_now()
    save()
    junit.write(out / "junit.xml", [suite(rec)], "mutants")
    return rec


def suite(rec: dict[str, Any]) -> junit.Suite:
    cases: list[junit.Case] = []
    ctl = rec.get("control")
    if ctl:
        cases.append(junit.Case("control", "mutants", "pass" if ctl["outcome"] == "pass"
                                else "error", ctl.get("detail", "")))
    for m in rec["mutants"]:
        outcome = {"killed": "pass", "survived": "fail"}.get(m.get("outcome", ""), "error")
        msg = {"killed": "", "survived": f"no killer failed: {m['what']}"}.get(
            m.get("outcome", ""), m.get("detail", "not run"))
        text = "\n".join(f"{k}: {v}" for k, v in m.get("killers", {}).items())
        cases.append(junit.Case(m["name"], "mutants", outcome, msg, text))
    return junit.Suite("mutants", cases, {"harness_revision": str(rec["harness_revision"])})


def all_killed(rec: dict[str, Any]) -> bool:
    ctl = rec.get("control")
    return (ctl is None or ctl["outcome"] == "pass") and bool(rec["mutants"]) \
        and all(m.get("outcome") == "killed" for m in rec["mutants"])


def report(rec: dict[str, Any]) -> str:
    lines = []
    ctl = rec.get("control")
    if ctl:
        lines.append(f"control ({ctl['base']}, unmutated): {ctl['outcome']}"
                     + (f" - {ctl['detail']}" if ctl.get("detail") else ""))
    for m in rec["mutants"]:
        lines.append(f"{m['name']:<22} {m.get('outcome', 'not run'):<10} {m['what']}")
    killed = sum(1 for m in rec["mutants"] if m.get("outcome") == "killed")
    lines.append(f"{killed} of {len(rec['mutants'])} mutants killed")
    return "\n".join(lines)
