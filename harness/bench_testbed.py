#!/usr/bin/python3
"""make bench-testbed: how fast is the testbed itself?  Figures, no verdicts.

Measures, for one kernel variant:
  * fresh build time (new build directory, ccache disabled),
  * rebuild time after touching one mm/ file,
  * boot-to-init time (kernel start until the guest's /init is up),
  * the wall time of one scenario (test-merge),
  * whether a busy guest starves the harness: how late a host thread of
    the harness wakes from 10 ms sleeps while every vCPU of the guest
    spins (1 vCPU against 2; the host has 2 cores), with the host load.

The bench pins the build of the variant as it starts (build id, revision,
dirty flag, variant: pksmtb/benchbuilds.py).  It rebuilds that kernel in
place, so it needs a build record that describes it and sources unchanged
since; the rebuild keeps the build's id in the banner and updates the
record, as 'make kernel' would.  Every boot after it is held to the pin: a
boot of another build (the kernel rebuilt under the bench by someone else)
is marked in the results and stops the bench with the reason.
Writes results/bench/testbed-<UTC>.json (the figures, the pinned build and
the harness's revision) and prints a table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pksmtb import (benchbuilds, boot, buildinfo, config, console, kernel,  # noqa: E402
                    paths, results, runner)


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t = time.monotonic()
    subprocess.run(cmd, check=True, env={**os.environ, **(env or {})},
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - t


def boot_to_init(kb: kernel.KernelBuild, pins: benchbuilds.Pins, runs: int) -> list[float]:
    out = []
    for i in range(runs):
        with tempfile.TemporaryDirectory() as d:
            share = Path(d)
            (share / "run.sh").write_text("exit 0\n")
            spec = boot.BootSpec(binary=kb.binary, mem_mib=128, share=share,
                                 umid=f"bench-{os.getpid()}", uml_dir=share / "uml")
            ready: list[float] = []
            con = console.Console()
            start = time.monotonic()

            def on_line(line: str) -> None:
                con.feed(line)
                if con.ready and not ready:
                    ready.append(time.monotonic() - start)
            # the host's time-out scale (config), as every run's
            boot.boot(spec, on_line, timeout=60 * config.host_time_scale(1).scale)
            pins.check_boot(f"boot to init {i + 1}", kb, con.uts_version())
            if not ready:
                raise SystemExit("bench: the guest never reached /init")
            out.append(ready[0])
    return out


def wake_lateness(kb: kernel.KernelBuild, pins: benchbuilds.Pins, vcpus: int,
                  seconds: int) -> dict[str, float]:
    """Lateness (ms) of the harness's 10 ms sleeps while the guest spins.

    The guest runs one busy loop per vCPU for `seconds`; a host thread of
    this process sleeps 10 ms at a time meanwhile and records how late it
    wakes: what a busy guest costs the harness's own timers and I/O.
    """
    late: list[float] = []
    stop = threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            t = time.monotonic()
            time.sleep(0.010)
            late.append((time.monotonic() - t - 0.010) * 1000)

    with tempfile.TemporaryDirectory() as d:
        share = Path(d)
        (share / "run.sh").write_text(
            f"for i in $(seq {vcpus}); do timeout {seconds} sh -c 'while :; do :; done' & done\n"
            "wait\nexit 0\n")
        spec = boot.BootSpec(binary=kb.binary, mem_mib=128, share=share,
                             umid=f"bench-{os.getpid()}", uml_dir=share / "uml",
                             vcpus=vcpus)
        con = console.Console()
        th = threading.Thread(target=sampler)
        started: list[bool] = []

        def on_line(line: str) -> None:
            con.feed(line)
            if con.ready and not started:
                started.append(True)
                th.start()

        boot.boot(spec, on_line,
                  timeout=(seconds + 60) * config.host_time_scale(vcpus).scale)
        stop.set()
        if started:
            th.join()
        pins.check_boot(f"wake lateness, {vcpus} vCPU", kb, con.uts_version())
    if len(late) < 10:
        raise SystemExit("bench: the guest never reached /init")
    late.sort()
    return {"p50_ms": round(late[len(late) // 2], 2),
            "p99_ms": round(late[len(late) * 99 // 100], 2),
            "max_ms": round(late[-1], 2), "samples": len(late)}


def rebuild_id(kb: kernel.KernelBuild, frags: list[Path], pins: benchbuilds.Pins) -> str:
    """The build id the in-place rebuild keeps: the pinned one.  The bench
    rebuilds the kernel it boots, so that kernel must have a build record
    and its sources must not have changed since (the rebuild would boot
    another build)."""
    pin = pins.builds[kb.name]
    want = f"'make kernel VARIANT={kb.variant}' first"
    if not pin["id"]:
        raise SystemExit(f"bench: {kb.name} has no build record that describes it "
                         f"({pin['problem']}); the bench rebuilds it in place: run {want}")
    try:
        now = str(buildinfo.sources(paths.TOP, paths.KSRC, [str(f) for f in frags])["id"])
    except buildinfo.BuildInfoError as e:
        raise SystemExit(f"bench: {e}") from None
    if now != pin["id"]:
        raise SystemExit(f"bench: the sources of {kb.name} changed since its build "
                         f"{pin['id']} (they are build {now} now); the bench rebuilds it "
                         f"in place and would boot another build: run {want}")
    return now


def measure(args: argparse.Namespace, kb: kernel.KernelBuild, frags: list[Path],
            pins: benchbuilds.Pins, fig: dict[str, object]) -> None:
    jobs = str(fig["jobs"])
    if not args.skip_fresh:
        out = paths.TOP / "build" / "bench" / f"fresh-{args.variant}"
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run(["sh", str(paths.TOP / "linux" / "kconfig.sh"), str(paths.KSRC),
                        str(out), *map(str, frags)], check=True)
        print("bench: fresh build (ccache disabled) ...", flush=True)
        fig["fresh_build_s"] = round(timed(
            ["make", "-s", "-C", str(paths.KSRC), "ARCH=um", f"O={out}", f"-j{jobs}", "linux"],
            env={"CCACHE_DISABLE": "1"}), 1)
        shutil.rmtree(out, ignore_errors=True)
    # The rebuild is the kernel the rest boots: the pinned build, rebuilt
    # as 'make kernel' builds it (its id in the banner, the record updated).
    bid = rebuild_id(kb, frags, pins)
    if buildinfo.begin(kb.name, kb.binary.parent, [str(f) for f in frags])["id"] != bid:
        raise SystemExit(f"bench: the sources of {kb.name} changed during the bench: "
                         "it stops before rebuilding")
    mm_file = paths.KSRC / "mm" / "ksm.c"
    os.utime(mm_file)
    print("bench: rebuild after touching mm/ksm.c ...", flush=True)
    fig["rebuild_after_touch_s"] = round(timed(
        ["make", "-s", "-C", str(paths.KSRC), "ARCH=um", f"O={kb.binary.parent}",
         f"-j{jobs}", "CC=ccache gcc" if shutil.which("ccache") else "CC=gcc",
         f"KBUILD_BUILD_VERSION={bid}", "linux"]), 1)
    buildinfo.end(kb.binary.parent)
    print("bench: boot to init ...", flush=True)
    boots = boot_to_init(kb, pins, args.boots)
    fig["boot_to_init_s_median"] = round(statistics.median(boots), 3)
    fig["boot_to_init_s_all"] = [round(b, 3) for b in boots]
    print("bench: scenario test-merge ...", flush=True)
    with tempfile.TemporaryDirectory() as d:
        t = time.monotonic()
        res = runner.run(runner.RunRequest("test-merge", variant=args.variant,
                                           results=Path(d), progress=False))
        fig["scenario_test_merge_wall_s"] = round(time.monotonic() - t, 2)
        fig["scenario_test_merge_exit"] = int(res.exit_code)
        pins.check_run("scenario test-merge", res.meta)
    # (the plain build of a variant is an SMP build: ncpus= applies)
    print("bench: harness wake-up lateness beside a busy guest ...", flush=True)
    fig["host_loadavg_before"] = round(os.getloadavg()[0], 2)
    for n in (1, 2):
        fig[f"harness_wake_late_busy_{n}vcpu"] = wake_lateness(kb, pins, n, 15)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default=config.DEFAULT_VARIANT, choices=paths.VARIANTS)
    ap.add_argument("--skip-fresh", action="store_true", help="skip the fresh build")
    ap.add_argument("--boots", type=int, default=5)
    args = ap.parse_args()
    if args.boots < 1 or args.boots > 100:
        ap.error("--boots must be 1..100")

    frags = [paths.CONFIG_DIR / "base.config", paths.CONFIG_DIR / f"{args.variant}.config"]
    kb = kernel.find_kernel(args.variant)
    pins = benchbuilds.Pins.of([kb])
    print("\n".join(pins.header()), flush=True)
    rebuild_id(kb, frags, pins)             # before any figure: can it rebuild?
    fig: dict[str, object] = {"variant": args.variant, "jobs": str(os.cpu_count() or 1)}
    dest = paths.TOP / "results" / "bench"
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"testbed-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    try:
        measure(args, kb, frags, pins, fig)
    except benchbuilds.BuildChanged:
        results.write_json(path, {**fig, **pins.to_json()})   # which boot, and where it stopped
        raise
    results.write_json(path, {**fig, **pins.to_json()})
    print("\n".join(pins.header()))
    width = max(len(k) for k in fig)
    for k, v in fig.items():
        print(f"  {k:<{width}}  {v}")
    print(f"bench: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
