"""Shared fixtures: the harness on sys.path, built kernels, in-process runs.

run_scenario runs a scenario in this process through the harness's own
API (pksmtb.runner.run) and hands back the RunResult: its run directory,
verdict, summary, the parsed console (result.console.event("filled"))
and the sampler's series (result.series()).
"""

from __future__ import annotations

import re
import shutil
import sys
import tomllib
from collections.abc import Generator
from pathlib import Path
from typing import Any, Protocol

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pksmtb import boot, config, paths, runner  # noqa: E402

TEST_DATA = Path(__file__).resolve().parent / "test_data"


def pytest_configure(config: pytest.Config) -> None:
    """Under make, a killed make stops the session (SIGTERM) as Ctrl-C would."""
    boot.stop_with_parent_if_asked()


# Where a failed test's run directories are kept (pytest rotates its own
# temporary directories away after three sessions).
FAILED_RUNS = paths.TOP / "results" / "failed"


@pytest.hookimpl(hookwrapper=True)  # type: ignore[misc]
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """A test that failed with runs behind it: copy them to results/failed/."""
    outcome = yield
    rep = outcome.get_result()
    root = getattr(item, "funcargs", {}).get("runs_root")
    if rep.when != "call" or not rep.failed or not isinstance(root, Path) \
            or not root.is_dir():
        return
    dest = FAILED_RUNS / re.sub(r"[^\w.=-]", "_", item.nodeid)
    shutil.copytree(root, dest, dirs_exist_ok=True)
    rep.sections.append(("kept", f"the test's run directories are kept in {dest}"))


def built(name: str) -> Path:
    """The kernel binary of build NAME; a missing build is an error, not a skip."""
    binary = paths.KBUILD / name / "linux"
    if not binary.is_file() or not (paths.ROOTFS / "init").is_file():
        pytest.fail(f"{binary} or the rootfs is missing: run 'make kernels rootfs' first")
    return binary


def scenario(text: str, name: str = "t") -> config.Scenario:
    """A scenario from TOML text, validated as a file would be."""
    return config.parse_scenario(tomllib.loads(text), name, None)


def unreadable(shapes: dict[str, dict[str, str]]) -> list[str]:
    """Figures a shape could not read: shapes.c prints -1 for a counter of
    /sys/kernel/mm/pksm it cannot read (or a frame it cannot look up),
    which would pass every upper limit below."""
    return [f"{name}.{key}" for name, fields in shapes.items()
            for key, value in fields.items() if value == "-1"]


def explain(res: runner.RunResult) -> str:
    """What to show when a run's assertion fails: problems and the console's end."""
    return (f"exit {int(res.exit_code)} in {res.run_dir}\n" + "\n".join(res.problems)
            + "\n--- console (end) ---\n" + res.console_text[-3000:])


class RunScenario(Protocol):
    def __call__(self, scenario: str | config.Scenario, build: str = ...,
                 *, check: bool = ..., **request: Any) -> runner.RunResult: ...


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def run_scenario(runs_root: Path) -> RunScenario:
    """run_scenario(scenario, build="ksm", check=True, **RunRequest fields).

    BUILD is a kernel build name (ksm, pksm, pksm-debug); check asserts the
    run passed.  A run stopped by SIGINT/SIGTERM/SIGHUP stops the session.
    """
    def go(scenario: str | config.Scenario, build: str = "ksm", *, check: bool = True,
           **request: Any) -> runner.RunResult:
        built(build)
        variant, _, flavour = build.partition("-")
        if flavour == "debug":
            request.setdefault("timeout", 900)
        req = runner.RunRequest(scenario, variant=variant, flavour=flavour,
                                results=runs_root, progress=False, **request)
        res = runner.run(req)
        if res.boot.interrupted:
            raise KeyboardInterrupt(f"run interrupted by signal {res.boot.signal}")
        if check:
            assert res.exit_code == 0 and res.summary["verdict"] == "pass", explain(res)
        return res
    return go
