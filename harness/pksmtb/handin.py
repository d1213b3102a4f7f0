"""Hand-in archives (make handin): what a student submits and the batch
grader takes.

One format: ``labN-ID.tar.gz`` holds one directory, ``labN-ID/``, with
the lab's work files (lab.toml's names, nothing else) and MANIFEST.json
(the lab, the student id, the UTC time, each file's sha256).  Unpacked,
it is a submission directory as ``lab.py batch`` has always taken them
(the lab's files by name), so the grader checks an archive and unpacks
it, then grades the directory; a directory carrying a MANIFEST.json is
held to the same rules.  Refused, with the reason: a wrong lab, a file
missing, a file outside the lab's list, a changed file (sha256), a link,
an absolute or ``..`` path, a member too large.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import labs

MANIFEST = "MANIFEST.json"
FORMAT = 1
STUDENT_ENV = "PKSMTB_STUDENT"
SUFFIX = ".tar.gz"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_FILE = 4 << 20          # bytes a work file may have (the largest is tree.c, ~40 KiB)


class HandinError(labs.LabError):
    """An archive or hand-in the grader refuses: the reason is for the student."""


def student_id(given: str | None) -> str:
    """GIVEN, else $PKSMTB_STUDENT; HandinError if neither or not a plain id."""
    sid = (given if given is not None else os.environ.get(STUDENT_ENV, "")).strip()
    if not sid:
        raise HandinError(f"who is handing in? give your student id: make handin LAB=n "
                          f"STUDENT=id (or {STUDENT_ENV}=id, or lab.py handin --student id)")
    if not _ID.match(sid):
        raise HandinError(f"student id {sid!r}: letters, digits, '.', '_', '-' only "
                          "(at most 64, starting with a letter or digit)")
    return sid


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stem(lab: labs.Lab, sid: str) -> str:
    return f"lab{lab.number}-{sid}"


def pack(lab: labs.Lab, work: Path, sid: str, out_dir: Path,
         now: datetime | None = None) -> Path:
    """OUT_DIR/labN-SID.tar.gz from the lab's files in WORK (the student's
    copy, labs/work/N); LabError if one is missing."""
    files = labs.submission_files(lab, work)
    data = {name: p.read_bytes() for name, p in files.items()}
    for name, b in data.items():
        if len(b) > MAX_FILE:
            raise HandinError(f"{files[name]}: {len(b)} bytes, more than a work file may have "
                              f"({MAX_FILE})")
    when = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    manifest = {"format": FORMAT, "lab": lab.number, "student": sid,
                "created_utc": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "files": {name: sha256(b) for name, b in sorted(data.items())}}
    data[MANIFEST] = (json.dumps(manifest, indent=2) + "\n").encode()
    top = stem(lab, sid)
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / f"{top}{SUFFIX}"
    tmp = dest.with_name(dest.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for name in sorted(data):
            ti = tarfile.TarInfo(f"{top}/{name}")
            ti.size, ti.mode, ti.mtime = len(data[name]), 0o644, int(when.timestamp())
            tar.addfile(ti, io.BytesIO(data[name]))
    tmp.replace(dest)
    return dest


@dataclass
class Handin:
    student: str
    dir: Path               # the unpacked submission directory
    manifest: dict[str, Any]


def check_manifest(lab: labs.Lab, manifest: Any, files: dict[str, bytes], where: str) -> str:
    """The student id of a hand-in whose MANIFEST is MANIFEST and whose
    other files are FILES; HandinError naming what is wrong."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise HandinError(f"{where}: {MANIFEST} is not a hand-in manifest (format {FORMAT})")
    if manifest.get("lab") != lab.number:
        raise HandinError(f"{where}: a hand-in of lab {manifest.get('lab')}, not of lab "
                          f"{lab.number}")
    sid = manifest.get("student")
    if not isinstance(sid, str) or not _ID.match(sid):
        raise HandinError(f"{where}: {MANIFEST} names no valid student id ({sid!r})")
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        raise HandinError(f"{where}: {MANIFEST} lists no files")
    want = [f.name for f in lab.files]
    extra = sorted((set(files) | set(listed)) - set(want))
    if extra:
        raise HandinError(f"{where}: files outside lab {lab.number}'s list: "
                          f"{', '.join(extra)} (a lab {lab.number} hand-in has only "
                          f"{', '.join(want)})")
    missing = [n for n in want if n not in files or n not in listed]
    if missing:
        raise HandinError(f"{where}: missing {', '.join(missing)} (a lab {lab.number} hand-in "
                          f"has {', '.join(want)})")
    changed = [n for n in want if sha256(files[n]) != listed[n]]
    if changed:
        raise HandinError(f"{where}: {', '.join(changed)} not as handed in "
                          f"(sha256 differs from {MANIFEST})")
    return sid


def _members(tar: tarfile.TarFile, where: str) -> tuple[str, dict[str, bytes]]:
    """The one top directory of TAR and its files' contents; HandinError
    for anything but plain files (and the directory itself) in one
    directory, or a file too large."""
    top: str | None = None
    files: dict[str, bytes] = {}
    for ti in tar.getmembers():
        parts = ti.name.strip("/").split("/")
        if ti.name.startswith("/") or ".." in parts or "" in parts or len(parts) > 2:
            raise HandinError(f"{where}: member {ti.name!r}: not a file of one directory")
        if top is None:
            top = parts[0]
        if parts[0] != top:
            raise HandinError(f"{where}: more than one directory ({top}, {parts[0]})")
        if len(parts) == 1:
            if not ti.isdir():
                raise HandinError(f"{where}: member {ti.name!r}: not in a directory")
            continue
        if not ti.isreg():
            raise HandinError(f"{where}: member {ti.name!r}: not a regular file "
                              "(links and devices are refused)")
        if ti.size > MAX_FILE:
            raise HandinError(f"{where}: member {ti.name!r}: {ti.size} bytes, more than "
                              f"{MAX_FILE}")
        if parts[1] in files:
            raise HandinError(f"{where}: {parts[1]} twice")
        f = tar.extractfile(ti)
        files[parts[1]] = f.read() if f else b""
    if top is None:
        raise HandinError(f"{where}: empty archive")
    return top, files


def _manifest(files: dict[str, bytes], where: str) -> Any:
    raw = files.pop(MANIFEST, None)
    if raw is None:
        raise HandinError(f"{where}: no {MANIFEST} (make handin writes it)")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HandinError(f"{where}: {MANIFEST} is not JSON: {e}") from None


def unpack(lab: labs.Lab, archive: Path, dest_root: Path) -> Handin:
    """ARCHIVE checked against LAB and unpacked as DEST_ROOT/<student>/
    (replacing what was there); HandinError saying why it is refused."""
    where = archive.name
    try:
        with tarfile.open(archive, "r:gz") as tar:
            top, files = _members(tar, where)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise HandinError(f"{where}: not a hand-in archive (a .tar.gz from make handin): "
                          f"{e}") from None
    manifest = _manifest(files, where)
    sid = check_manifest(lab, manifest, files, where)
    if top != stem(lab, sid):
        raise HandinError(f"{where}: its directory is {top}, its manifest says "
                          f"{stem(lab, sid)}")
    d = dest_root / sid
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for name, b in files.items():
        (d / name).write_bytes(b)
    return Handin(sid, d, manifest)


def check_dir(lab: labs.Lab, d: Path) -> None:
    """A submission directory with a MANIFEST.json (an unpacked hand-in)
    holds exactly what it lists; one without is taken as it is."""
    if not (d / MANIFEST).is_file():
        return
    where = d.name
    files = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
    others = sorted(p.name + "/" for p in d.iterdir() if not p.is_file())
    if others:
        raise HandinError(f"{where}: files outside lab {lab.number}'s list: "
                          f"{', '.join(others)}")
    check_manifest(lab, _manifest(files, where), files, where)


# Files lab.py batch writes into a class's directory: not submissions
# (nor are hidden files).
OUTPUTS = (".json", ".csv", ".xml", ".tmp")


def collect(lab: labs.Lab, d: Path, unpack_root: Path
            ) -> tuple[list[labs.Submission], list[labs.Grade]]:
    """The submissions in class directory D: each directory (as it is, or
    held to its MANIFEST.json) and each hand-in archive (checked, unpacked
    under UNPACK_ROOT); what is refused gets a grade of 0 with the reason."""
    subs: list[labs.Submission] = []
    refused: list[labs.Grade] = []
    seen: dict[str, str] = {}
    for entry in sorted(d.iterdir()):
        name = entry.name
        try:
            if entry.is_dir():
                check_dir(lab, entry)
                where = entry
            elif name.endswith(SUFFIX):
                h = unpack(lab, entry, unpack_root)
                name, where = h.student, h.dir
            elif name.endswith(OUTPUTS) or name.startswith("."):
                continue
            else:
                raise HandinError(f"{name}: neither a submission directory nor a hand-in "
                                  f"archive (lab{lab.number}-ID{SUFFIX} from make handin)")
            if name in seen:
                raise HandinError(f"{entry.name}: {name} handed in twice (also {seen[name]})")
            seen[name] = entry.name
            subs.append(labs.Submission(name, labs.submission_files(lab, where)))
        except labs.LabError as e:
            refused.append(labs.failed_all(lab, name, str(e)))
    return subs, refused
