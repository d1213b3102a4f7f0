"""The lab and mutant trees' overlay, without a kernel: the record of what
the base build was made from, by which a fresh tree keeps the mtime of the
checkout's PKSM files the base was built from and writes any other anew
(so that a base built from another checkout's sources is rebuilt where
they differ)."""

from __future__ import annotations

import json
from pathlib import Path

from pksmtb import buildinfo, overlay


def test_built_from_reads_the_base_builds_record(tmp_path: Path) -> None:
    assert overlay._built_from(tmp_path) == {}            # no record
    rec = tmp_path / buildinfo.RECORD
    rec.write_text("{not json")
    assert overlay._built_from(tmp_path) == {}            # unreadable
    rec.write_text(json.dumps({"pksm_files": ["mm/pksm/track.c"]}))
    assert overlay._built_from(tmp_path) == {}            # not a mapping
    digest = buildinfo.sha256_bytes(b"int x;\n")
    rec.write_text(json.dumps({"pksm_files": {"mm/pksm/track.c": digest, "x": 1}}))
    assert overlay._built_from(tmp_path) == {"mm/pksm/track.c": digest}

