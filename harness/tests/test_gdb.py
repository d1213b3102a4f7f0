"""gdb drives the real kernel: breakpoint in PKSM, backtrace, structures,
finish; and the PKSM helpers of harness/gdb/pksm.py (pksm-stats, ...)."""

from __future__ import annotations

import py_compile
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import built, explain
from pksmtb import gdb, paths, runner

HELPERS = paths.TOP / "harness" / "gdb" / "pksm.py"


@pytest.mark.boot
def test_gdb_breakpoint_backtrace_struct(runs_root: Path) -> None:
    built("pksm")
    script = paths.TOP / "harness" / "gdb" / "pksm-smoke.gdb"
    res = gdb.run_gdb(runner.RunRequest("pksm-merge", results=runs_root, progress=False),
                      script)
    assert isinstance(res, runner.RunResult)
    assert res.exit_code == 0, explain(res)
    out = res.console_text
    # the kernel's gdb scripts are loaded
    assert re.search(r"Linux version 7\.3\.\d+", out), out[-3000:]
    # the breakpoint was hit in pksmd while the workload ran, with a
    # backtrace from the daemon's loop
    assert re.search(r"Breakpoint 1, pksm_merge_pair", out), out[-3000:]
    assert re.search(r"#\d+ .*pksm_do_scan", out), out[-3000:]
    assert re.search(r"#\d+ .*pksmd", out), out[-3000:]
    # structures print with their fields (DWARF is there)
    # (the unstable partner's item: linked by index in its bucket's chain,
    # where = PKSM_UNSTABLE, alive; 16 bytes, no pfn of its own: its
    # frame is its place in the item table)
    assert re.search(r"\$1 = \{next = \d+, prev = \d+, hash = \d+, visits = \d+ '.+', "
                     r"where = 3 '\\003', dead = 0 '\\000'", out), out[-3000:]
    assert re.search(r"\$2 = \{rb_node = 0x", out)
    assert "$3 = 16" in out
    # $pksm_item_pfn(partner) is the frame of the partner's page (pfolio)
    m = re.search(r"^\$4 = (\d+)\n\$5 = (\d+)$", out, re.M)
    assert m and m.group(1) == m.group(2), out[-3000:]
    # and the run then finished normally, workload verified
    assert res.summary["verdict"] == "pass", res.summary
    assert "gdb_command_line" in res.meta


@pytest.mark.boot
def test_gdb_pksm_helpers(runs_root: Path) -> None:
    """pksm-stats, pksm-lists, pksm-unstable, pksm-stable and pksm-page
    (by pfn and by user address) on a kernel stopped after 200 merges."""
    built("pksm")
    script = paths.TOP / "harness" / "gdb" / "pksm-helpers.gdb"
    res = gdb.run_gdb(runner.RunRequest("pksm-merge", results=runs_root, progress=False),
                      script)
    assert isinstance(res, runner.RunResult)
    assert res.exit_code == 0, explain(res)
    out = res.console_text
    tail = out[-6000:]
    assert re.search(r"Breakpoint 1, pksm_merge_pair", out), tail
    assert "Python Exception" not in out and "Traceback" not in out, tail
    # pksm-stats: every counter by its source name, with a number
    for name in ("nr_unstable", "nr_stable_nodes", "nr_mappings", "nr_unstable_merges",
                 "pages_scanned", "busy_ns", "nr_new", "nr_tracked", "nr_items",
                 "pksm_nr_cow_breaks", "pksm_nr_excluded", "pksm_nr_backoffs",
                 "pksm_nr_migrated", "ksm_zero_pages", "pksm_run", "pksm_pages_to_scan",
                 "pksm_sleep_ms", "pksm_probation_scans", "pksm_period_seconds"):
        assert re.search(rf"^  {name} +-?\d+$", out, re.M), (name, tail)
    # (200 calls of pksm_merge_pair were skipped; some of them failed)
    for name in ("nr_unstable_merges", "nr_stable_nodes", "nr_mappings"):
        assert int(re.findall(rf"^  {name} +(\d+)$", out, re.M)[0]) > 0, name
    # pksm-lists 3: each list's length agrees with its counter; at most 3
    # entries each, with the item's fields
    for name, count in (("new_list", "nr_new"), ("rescan_list", "nr_rescan")):
        m = re.search(rf"^{name}: (\d+) items \(pksm_lc\.{count} (\d+)\)$", out, re.M)
        assert m and m.group(1) == m.group(2), (name, tail)
    levels = re.findall(r"^probation_list\[(\d)\]: (\d+) items "
                        r"\(pksm_lc\.nr_probation\[(\d)\] (\d+)\)$", out, re.M)
    assert [lv[0] for lv in levels] == [str(i) for i in range(8)], tail
    assert all(lv[0] == lv[2] and lv[1] == lv[3] for lv in levels), levels
    m = re.search(r"^pksm_unstable_table: (\d+) items \(pksm_sc\.nr_unstable (\d+)\)\n"
                  r"((?:  pfn .*\n)*)", out, re.M)
    assert m and m.group(1) == m.group(2) and int(m.group(1)) > 0, tail
    assert len(m.group(3).splitlines()) == min(3, int(m.group(1)))
    assert re.search(r"^  pfn \d+ +hash 0x[0-9a-f]{8} visits \S+ +where unstable +dead 0 "
                     r"backoff \d+$", m.group(3), re.M), m.group(3)
    # pksm-unstable 5: five items bucket by bucket, each in the bucket its
    # key (the checksum in item->hash) hashes to (hash_32(): the golden
    # ratio multiply, top bits)
    m = re.search(r"^pksm_unstable_table: \d+ items \(pksm_sc\.nr_unstable\) in (\d+) buckets",
                  out, re.M)
    assert m, tail
    bits = int(m.group(1)).bit_length() - 1
    assert 1 << bits == int(m.group(1)), m.group(0)
    walk = re.findall(r"^  \[(\d)\] bucket (\d+) item 0x[0-9a-f]+ pfn \d+ +hash (0x[0-9a-f]{8}) .*"
                      r"where unstable ", out, re.M)
    assert [int(i) for i, _, _ in walk] == [0, 1, 2, 3, 4], tail
    buckets = [int(b) for _, b, _ in walk]
    assert buckets == sorted(buckets), walk
    assert all(((int(h, 16) * 0x61C88647) & 0xFFFFFFFF) >> (32 - bits) == int(b)
               for _, b, h in walk), walk
    # pksm-stable 5: nodes with their mapping records
    nodes = re.findall(r"^  \[(\d)\] stable node 0x[0-9a-f]+: kpfn (\d+) hash 0x[0-9a-f]{8} "
                       r"nr_mappings (\d+) merged_at \d+$", out, re.M)
    assert len(nodes) == 5, tail
    assert int(nodes[0][2]) >= 2
    assert re.search(r"^  \[0\]   mapping\[1\] anon_vma 0x[0-9a-f]+ pgoff 0x[0-9a-f]+$",
                     out, re.M), tail
    # pksm-page $pksm_kpfn: the first stable node's page is a KSM page
    # whose node is that node, records included
    kpfn = nodes[0][1]
    page = re.search(rf"^pfn {kpfn}: struct page 0x[0-9a-f]+\n  no item .*\n"
                     rf"  KSM page \(folio 0x[0-9a-f]+, mapping (0x[0-9a-f]+)\)\n"
                     rf"  stable node (0x[0-9a-f]+): kpfn {kpfn} .*\n"
                     rf"    mapping\[0\] anon_vma", out, re.M)
    assert page, tail
    # ->mapping is the node's address with FOLIO_MAPPING_KSM (3) set (a
    # node is 8-byte aligned, not always 16: compare, do not pattern-match)
    assert int(page.group(1), 16) == int(page.group(2), 16) | 3, page.groups()
    # pksm-page $pksm_pfn: the first page waiting on the new list or, once
    # seen, on a probation list, with its item
    first = re.search(r"^(new_list|probation_list\[\d\]): [1-9]\d* items .*\n  pfn (\d+) ",
                      out, re.M)
    assert first, tail
    pfn, where = first.group(2), "new" if first.group(1) == "new_list" else "probation"
    assert re.search(rf"^pfn {pfn}: struct page 0x[0-9a-f]+\n  item 0x[0-9a-f]+: pfn {pfn} +"
                     rf"hash 0x[0-9a-f]{{8}} visits \S+ +where {where} +dead 0 backoff \d+\n"
                     rf"  anonymous page, not KSM \(anon_vma 0x[0-9a-f]+\)$", out, re.M), tail
    # ... and found again from user space, through a process's page tables
    region = re.search(r"^region KSM page: kpfn (\d+) pgoff \d+$", out, re.M)
    assert region, tail
    kpfn = region.group(1)
    assert re.search(rf"^PID \d+ address 0x[0-9a-f]+000 -> pfn {kpfn}\n"
                     rf"pfn {kpfn}: struct page .*\n.*\n  KSM page", out, re.M), tail
    # bad arguments: usage messages
    assert "pksm-lists -1: error: usage: pksm-lists [N]" in out
    assert "pksm-stable x: error: usage: pksm-stable [N]: N must be a number" in out
    assert "pksm-page: error: usage: pksm-page PFN | pksm-page ADDR PID" in out
    assert res.summary["verdict"] == "pass", res.summary


def test_pksm_helpers_compile(tmp_path: Path) -> None:
    """harness/gdb/pksm.py is valid Python (it runs only inside gdb)."""
    py_compile.compile(str(HELPERS), cfile=str(tmp_path / "pksm.pyc"), doraise=True)


def test_gdbinit_loads_helpers(tmp_path: Path) -> None:
    """The generated gdbinit sources pksm.py after the kernel's lx- scripts."""
    build = tmp_path / "b"
    build.mkdir()
    (build / "vmlinux-gdb.py").write_text("")
    lines = gdb.gdbinit(build).splitlines()
    assert lines.index(f"source {HELPERS}") > lines.index(f"source {build / 'vmlinux-gdb.py'}")
    assert f"source {HELPERS}" in gdb.gdbinit(tmp_path)   # even without lx- scripts


def gdb_static(vmlinux: Path, *commands: str) -> str:
    """gdb on a vmlinux file, nothing running: the helpers read its data."""
    if shutil.which("gdb") is None:
        pytest.skip("gdb not installed")
    if not vmlinux.is_file():
        pytest.skip(f"{vmlinux} not built")
    argv = ["gdb", "-q", "-batch", "-nx", "-iex", "set auto-load off",
            "-x", str(HELPERS)]
    for c in commands:
        argv += ["-ex", c]
    p = subprocess.run(argv + [str(vmlinux)], capture_output=True, text=True, timeout=120)
    return p.stdout + p.stderr


def test_pksm_helpers_static_vmlinux() -> None:
    """Without booting: pksm-stats reads the pksm build's initial values
    through DWARF, and bad arguments get a usage message."""
    out = gdb_static(paths.KBUILD / "pksm" / "vmlinux", "pksm-stats", "pksm-lists x",
                     "pksm-page 1 2 3")
    assert re.search(r"^pksm_sc \(struct pksm_scan_counts\):\n  nr_unstable +0$", out, re.M), out
    assert re.search(r"^  pksm_pages_to_scan +\d+$", out, re.M), out
    assert re.search(r"^  ksm_zero_pages +0$", out, re.M), out
    assert "usage: pksm-lists [N]: N must be a number, not 'x'" in out
    assert "Traceback" not in out and "Python Exception" not in out, out


def test_pksm_helpers_refuse_kernel_without_pksm() -> None:
    """On upstream KSM's build every command says PKSM is missing."""
    cmds = ("pksm-stats", "pksm-lists", "pksm-unstable", "pksm-stable", "pksm-page 1")
    out = gdb_static(paths.KBUILD / "ksm" / "vmlinux", *cmds)
    assert out.count("pksm: symbol 'pksm_sc' not found: this kernel has no PKSM") == len(cmds), out
