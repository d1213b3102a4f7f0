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
Writes results/bench/testbed-<UTC>.json and prints a table.
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

from pksmtb import boot, config, console, kernel, paths, results, runner  # noqa: E402


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t = time.monotonic()
    subprocess.run(cmd, check=True, env={**os.environ, **(env or {})},
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - t


def boot_to_init(binary: Path, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            share = Path(d)
            (share / "run.sh").write_text("exit 0\n")
            spec = boot.BootSpec(binary=binary, mem_mib=128, share=share,
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
            if not ready:
                raise SystemExit("bench: the guest never reached /init")
            out.append(ready[0])
    return out


def wake_lateness(binary: Path, vcpus: int, seconds: int) -> dict[str, float]:
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
        spec = boot.BootSpec(binary=binary, mem_mib=128, share=share,
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
    if len(late) < 10:
        raise SystemExit("bench: the guest never reached /init")
    late.sort()
    return {"p50_ms": round(late[len(late) // 2], 2),
            "p99_ms": round(late[len(late) * 99 // 100], 2),
            "max_ms": round(late[-1], 2), "samples": len(late)}


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
    jobs = str(os.cpu_count() or 1)
    fig: dict[str, object] = {"variant": args.variant, "jobs": jobs,
                              "git_revision": kernel.git_revision(),
                              "kernel_version": kernel.kernel_version(),
                              "patch_series_sha256": kernel.patch_series_hash()}
    kb = kernel.find_kernel(args.variant)
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
    mm_file = paths.KSRC / "mm" / "ksm.c"
    os.utime(mm_file)
    print("bench: rebuild after touching mm/ksm.c ...", flush=True)
    fig["rebuild_after_touch_s"] = round(timed(
        ["make", "-s", "-C", str(paths.KSRC), "ARCH=um", f"O={kb.binary.parent}",
         f"-j{jobs}", "CC=ccache gcc" if shutil.which("ccache") else "CC=gcc", "linux"]), 1)
    print("bench: boot to init ...", flush=True)
    boots = boot_to_init(kb.binary, args.boots)
    fig["boot_to_init_s_median"] = round(statistics.median(boots), 3)
    fig["boot_to_init_s_all"] = [round(b, 3) for b in boots]
    print("bench: scenario test-merge ...", flush=True)
    with tempfile.TemporaryDirectory() as d:
        t = time.monotonic()
        rc = int(runner.run(runner.RunRequest("test-merge", variant=args.variant,
                                              results=Path(d), progress=False)).exit_code)
        fig["scenario_test_merge_wall_s"] = round(time.monotonic() - t, 2)
        fig["scenario_test_merge_exit"] = rc
    # (the plain build of a variant is an SMP build: ncpus= applies)
    print("bench: harness wake-up lateness beside a busy guest ...", flush=True)
    fig["host_loadavg_before"] = round(os.getloadavg()[0], 2)
    for n in (1, 2):
        fig[f"harness_wake_late_busy_{n}vcpu"] = wake_lateness(kb.binary, n, 15)
    dest = paths.TOP / "results" / "bench"
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"testbed-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    results.write_json(path, fig)
    width = max(len(k) for k in fig)
    for k, v in fig.items():
        print(f"  {k:<{width}}  {v}")
    print(f"bench: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
