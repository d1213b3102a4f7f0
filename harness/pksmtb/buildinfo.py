"""What a kernel was built from: the build record beside the binary.

The Makefile's kernel-NAME rule calls this twice around the kernel build:

    pksmtb.py build-info begin NAME OUT FRAGMENT...   prints the build id
    make ... KBUILD_BUILD_VERSION=<id> linux           the id in the banner
    pksmtb.py build-info end OUT                       OUT/pksmtb-build.json

The build id is the first 12 hex digits of sources_sha256, the hash of
every source that goes into the kernel: the prepared tree's stamp
(linux/src/.pksmtb-stamp: the Debian tarball's version and the hash of
every patch of linux/patches and pksm/patches), every file under pksm/
that linux/prepare.sh links into the tree (its path and content), and
the config fragments in the order they were merged.  Two builds from the
same sources carry the same id; any change to any of them changes it.
The git revision, and whether those sources differ from it (dirty, with
the paths), are recorded beside it, not hashed: a commit that touches
only the harness leaves the kernel, and its id, as they are.

Kbuild puts KBUILD_BUILD_VERSION in the UTS version, so the boot banner
and /proc/version read "Linux version 7.3.4 (...) #<id> SMP <date>";
changing it recompiles init/version.o and relinks, nothing else.  A run
records the build record (meta.json "build") and checks the banner of
the kernel that booted against it (check_banner()).  A sweep or a bench
pins the builds it boots as it starts (pin()) and holds every boot to
them (same_build()).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import paths, results

RECORD = "pksmtb-build.json"
PENDING = RECORD + ".next"
ID_LEN = 12
ID_RE = re.compile(rf"^[0-9a-f]{{{ID_LEN}}}$")
FORMAT = 1


class BuildInfoError(Exception):
    """The sources of a build cannot be read."""


def pksm_files(top: Path) -> list[str]:
    """The files under TOP/pksm that linux/prepare.sh links into the kernel
    tree (its rule: no patches/, no *.md, no dot files), sorted, relative
    to pksm/."""
    root = top / "pksm"
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            if rel.startswith("patches/") or name.endswith(".md") or name.startswith("."):
                continue
            out.append(rel)
    return sorted(out)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sources(top: Path, ksrc: Path, fragments: list[str]) -> dict[str, Any]:
    """Every source of a build, hashed: sources_sha256 (over all of them,
    names included, in a fixed order), and each one's own hash."""
    stamp = ksrc / ".pksmtb-stamp"
    try:
        stamp_data = stamp.read_bytes()
    except OSError as e:
        raise BuildInfoError(f"{stamp}: {e.strerror} (linux/prepare.sh makes it)") from None
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> str:
        h.update(label.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
        return sha256_bytes(data)

    tarball = stamp_data.decode(errors="replace").splitlines()[:1]
    out: dict[str, Any] = {
        "tarball": tarball[0].removeprefix("tarball ") if tarball else "",
        "stamp_sha256": add("stamp", stamp_data),
        "pksm_files": {},
        "fragments": [],
    }
    for rel in pksm_files(top):
        out["pksm_files"][rel] = add(f"pksm/{rel}", (top / "pksm" / rel).read_bytes())
    for frag in fragments:
        p = Path(frag) if Path(frag).is_absolute() else top / frag
        try:
            data = p.read_bytes()
        except OSError as e:
            raise BuildInfoError(f"config fragment {frag}: {e.strerror}") from None
        out["fragments"].append({"path": _rel(p, top), "sha256": add(f"fragment {_rel(p, top)}",
                                                                        data)})
    out["sources_sha256"] = h.hexdigest()
    out["id"] = out["sources_sha256"][:ID_LEN]
    return out


def _rel(p: Path, top: Path) -> str:
    try:
        return p.resolve().relative_to(top.resolve()).as_posix()
    except ValueError:
        return str(p)


def source_paths(fragments: list[str]) -> list[str]:
    """The checkout's paths a build's sources come from (for git status)."""
    return ["pksm", "linux/patches", "linux/source.conf", *fragments]


def git_state(top: Path, pathspec: list[str]) -> tuple[str, list[str]]:
    """HEAD's revision and the paths under PATHSPEC that differ from it
    (modified, added, untracked); ("unknown", []) outside git."""
    git = ["git", "-C", str(top)]
    try:
        rev = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        st = subprocess.run([*git, "status", "--porcelain", "--untracked-files=all", "--",
                             *pathspec], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", []
    return rev, sorted(line[3:] for line in st.splitlines() if line.strip())


def compiler() -> str:
    try:
        out = subprocess.run(["gcc", "--version"], capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.splitlines()[0] if out else "unknown"


def begin(name: str, out: Path, fragments: list[str], top: Path | None = None,
          ksrc: Path | None = None) -> dict[str, Any]:
    """The record of the build about to run, in OUT/pksmtb-build.json.next
    (end() completes it once the build succeeded)."""
    top = top or paths.TOP
    rec = sources(top, ksrc or paths.KSRC, fragments)
    rev, dirty = git_state(top, source_paths(fragments))
    rec = {"format": FORMAT, "name": name, "id": rec.pop("id"),
           "sources_sha256": rec.pop("sources_sha256"), "revision": rev,
           "dirty": bool(dirty), "dirty_paths": dirty, **rec,
           "compiler": compiler(), "host": os.uname().nodename}
    out.mkdir(parents=True, exist_ok=True)
    results.write_json(out / PENDING, rec)
    return rec


def end(out: Path) -> dict[str, Any]:
    """After a successful build: OUT/pksmtb-build.json from the pending
    record, with the binary's hash and the time.  A build that changed
    nothing (same binary as the record describes) keeps the record it has,
    so it still says when and from what revision the binary was made; if
    its sources are now those of a later revision, clean, that revision is
    added to the record's clean_at (a record made from a dirty tree then
    names the commit its sources equal)."""
    pending = out / PENDING
    rec = results.read_json(pending)
    binary_sha = binary_sha256(out / "linux")
    old = read_record(out)
    pending.unlink()
    if old and old.get("binary_sha256") == binary_sha and old.get("id") == rec["id"]:
        # The same sources, found clean at a later revision: say so, so that
        # a record first made from a dirty tree names a commit it equals.
        rev = rec.get("revision")
        if not rec.get("dirty") and rev not in ("unknown", None) \
                and rev != old.get("revision") and rev not in old.get("clean_at", []):
            old["clean_at"] = [*old.get("clean_at", []), rev]
            results.write_json(out / RECORD, old)
        return old
    rec["binary_sha256"] = binary_sha
    rec["built_utc"] = results.utc_now()
    results.write_json(out / RECORD, rec)
    return rec


def binary_sha256(binary: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(binary, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError:
        return "unknown"
    return h.hexdigest()


def read_record(out: Path) -> dict[str, Any] | None:
    try:
        return results.read_json(out / RECORD)
    except (OSError, ValueError):
        return None


@dataclass
class Recorded:
    """The build record of a binary as a run finds it."""

    record: dict[str, Any] | None     # pksmtb-build.json, None if there is none
    binary_sha256: str                # the binary as it is now
    problem: str = ""                 # why the record does not describe the binary

    @property
    def id(self) -> str | None:
        """The id the binary's banner must carry; None if unknown."""
        if self.record is None or self.problem:
            return None
        rid = self.record.get("id")
        return rid if isinstance(rid, str) else None


def recorded(binary: Path) -> Recorded:
    """The build record beside BINARY, checked against the binary itself:
    a binary built some other way (by hand, a lab's own tree) after the
    record was written does not match it."""
    rec = read_record(binary.parent)
    sha = binary_sha256(binary)
    if rec is None:
        return Recorded(None, sha, f"no {RECORD} beside {binary} "
                        "(not built by 'make kernel-NAME')")
    if rec.get("binary_sha256") != sha:
        return Recorded(rec, sha, f"{binary} is not the binary {RECORD} describes "
                        "(built since by other means)")
    return Recorded(rec, sha)


# ---- the banner of the kernel that booted -------------------------------------------

def banner_id(version: str | None) -> str | None:
    """The build id in a UTS version ('#<id> SMP ...'), None if it carries none."""
    if not version:
        return None
    word = version.split()[0].lstrip("#") if version.split() else ""
    return word if ID_RE.match(word) else None


def check_banner(expected: Recorded | None, uts_version: str | None) -> dict[str, Any]:
    """Is the kernel that booted the build the run recorded?

    status: "ok" the banner carries the recorded id; "mismatch" it carries
    another, or none (the binary was rebuilt under the run: an error);
    "unrecorded" the binary has no record that describes it (built by
    other means: noted, not an error); "no-banner" the console never
    showed the banner (the boot failed before it; the verdict says why)."""
    got = banner_id(uts_version)
    out: dict[str, Any] = {"uts_version": uts_version, "banner_id": got,
                           "recorded_id": expected.id if expected else None}
    if uts_version is None:
        out.update(status="no-banner", detail="no 'Linux version' banner on the console")
    elif expected is None or expected.id is None:
        out.update(status="unrecorded",
                   detail=expected.problem if expected else "no build record")
    elif got == expected.id:
        out.update(status="ok", detail=f"the banner carries build {got}")
    else:
        out.update(status="mismatch",
                   detail=f"the kernel that booted is build {got or 'without an id'} "
                          f"(banner '{uts_version}'), the run recorded build {expected.id}: "
                          "the binary was rebuilt under the run")
    return out


# ---- pinning a build: the same kernel for every boot of a sweep or a bench -----------

def pin(binary: Path) -> dict[str, Any]:
    """What identifies the build of BINARY as a sweep or a bench starts: its
    id if its record describes it, and the binary's hash either way."""
    rec = recorded(binary)
    r = rec.record or {}
    return {"id": rec.id, "binary_sha256": rec.binary_sha256, "problem": rec.problem or None,
            "revision": r.get("revision"), "dirty": r.get("dirty"),
            "clean_at": r.get("clean_at", []),
            "sources_sha256": r.get("sources_sha256"), "built_utc": r.get("built_utc"),
            "pinned_utc": results.utc_now()}


def same_build(pinned: dict[str, Any], build_id: str | None,
               binary_sha256: str | None) -> bool:
    """Is a boot's kernel the pinned build?  By id when both have one
    (a rebuild from the same sources is the same build), else by the
    binary's hash."""
    if pinned.get("id") and build_id:
        return bool(pinned["id"] == build_id)
    return bool(pinned.get("binary_sha256") == binary_sha256)


def booted(meta: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """The build a run booted, from its meta.json: its name, the id its
    banner carried (else the id recorded as it started), the binary's hash."""
    check = meta.get("build_check") or {}
    bid = check.get("banner_id") or meta.get("build_id")
    sha = meta.get("kernel_binary_sha256")
    return (str(meta.get("kernel_build", "?")), bid if isinstance(bid, str) else None,
            sha if isinstance(sha, str) else None)
