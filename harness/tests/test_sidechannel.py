"""The side-channel scenario's report (pksmtb/sidechannel.py) and the
Wilson interval it uses, on synthetic consoles: no boot."""

from __future__ import annotations

from pathlib import Path

import pytest

from pksmtb import cli, stats
from pksmtb import sidechannel

CONSOLE = """\
PKSMTB-EVENT sidechannel mode=all round=0 pages=256 held=120 correct=254 merged=119 cal_merged_ns=45000 cal_unique_ns=11000 waited_ms=1200
PKSMTB-EVENT sidechannel mode=all round=1 pages=256 held=130 correct=256 merged=130 cal_merged_ns=45000 cal_unique_ns=11000 waited_ms=1200
PKSMTB-EVENT sidechannel mode=uid round=0 pages=256 held=125 correct=131 merged=0 cal_merged_ns=48000 cal_unique_ns=11000 waited_ms=1300
"""


def run_dir(tmp: Path, text: str) -> Path:
    d = tmp / "20261206T000000Z"
    d.mkdir()
    (d / "console.log").write_text(text)
    (d / "meta.json").write_text('{"kernel_build": "pksm", "build_id": "abc", "vcpus": 2}')
    return d


def test_figures_per_mode_in_order(tmp_path: Path) -> None:
    figs = sidechannel.figures(run_dir(tmp_path, CONSOLE))
    assert [f.mode for f in figs] == ["all", "uid"]
    a, u = figs
    assert (a.rounds, a.trials, a.correct, a.held, a.merged) == (2, 512, 510, 250, 249)
    assert a.accuracy.mean == pytest.approx(510 / 512)
    assert (u.rounds, u.trials, u.correct, u.merged) == (1, 256, 131, 0)
    (tmp_path / "t").mkdir()
    table = sidechannel.table(run_dir(tmp_path / "t", CONSOLE))
    assert "| all | 2 | 512 | 510 | 0.996 [" in table and "| uid | 1 | 256 | 131 |" in table


FAKE = """\
PKSMTB-EVENT sidechannel mode=all round=0 pages=256 held=120 correct=131 merged=120 ksm=256 cal_pairs=64 cal_lone=32 cal_merged_ns=45000 cal_unique_ns=45100 waited_ms=1200
"""


def test_candidates_on_ksm_pages_and_fake_merge_knob(tmp_path: Path) -> None:
    """ksm counts candidates on any KSM page (fake merging: all of them);
    a console without the field counted only merged pages as KSM pages."""
    (fake,) = sidechannel.figures(run_dir(tmp_path, FAKE))
    assert (fake.merged, fake.ksm, fake.trials) == (120, 256, 256)
    (tmp_path / "old").mkdir()
    assert [f.ksm for f in sidechannel.figures(run_dir(tmp_path / "old", CONSOLE))] == [249, 0]
    d = tmp_path / "k"
    d.mkdir()
    d = run_dir(d, FAKE)
    (d / "meta.json").write_text('{"kernel_build": "pksm", "knobs": {"pksm": {"fake_merge": "1"}}}')
    table = sidechannel.table(d)
    assert "fake_merge 1" in table and "| 120 of 120 | 256 of 256 |" in table
    # a scenario that does not set it: the value the kernel read at the start
    (d / "meta.json").write_text('{"knobs": {}, "knobs_at_start": {"pksm/fake_merge": "0"}}')
    assert "fake_merge 0" in sidechannel.table(d)


def test_wilson_interval() -> None:
    # a textbook value: 81 of 263 -> 0.308 [0.255-0.366] at 95 %
    ci = stats.proportion_interval(81, 263)
    assert ci.mean == pytest.approx(0.30798, abs=1e-4)
    assert ci.lo == pytest.approx(0.2553, abs=1e-3) and ci.hi == pytest.approx(0.3662, abs=1e-3)
    # near the edges it stays inside [0, 1] and is not empty
    top = stats.proportion_interval(256, 256)
    assert top.hi is not None and top.lo is not None
    assert top.hi == pytest.approx(1.0) and 0.98 < top.lo < 1.0
    for k, n in ((1, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError):
            stats.proportion_interval(k, n)


def test_not_a_sidechannel_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = run_dir(tmp_path, "PKSMTB-EVENT verified result=ok\n")
    with pytest.raises(sidechannel.SideChannelError, match="no sidechannel events"):
        sidechannel.figures(d)
    assert cli.main(["sidechannel", str(d)]) == 2
    assert "no sidechannel events" in capsys.readouterr().err
