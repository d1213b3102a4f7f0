"""The student edition of the testbed (make dist-student): the tree a
course hands out, without what grading keeps private.

Left out (PRIVATE): the instructor's pages (labs/README.md, replaced by
labs/STUDENT.md; labs/INSTRUCTOR.md), the test suite (it grades the
reference solutions and holds answers), committed results and CI.  Every
lab file's marked regions hold their stand-in instead of the reference
(lab.toml's ``standins``, default the stubs), the markers kept, so that
``make lab`` makes the very skeleton it makes from the reference; the
reference answers files, the only home of the choice questions' keys
(labs.answer_key()), are stand-ins too.  labs/EDITION says "student":
lab.py then refuses what needs a reference or a key (SOLUTION=1,
instructor mode, batch).

A file carrying the instructor mark (INSTRUCTOR_MARK, in every
instructor-only page) that is not left out stops the build: a new
private page cannot slip in unlisted.  The files are git's tracked ones,
so build/, work copies, runs and untracked notes never go.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from . import labregion, labs, paths

NAME = "pksm-testbed-student"
# Repo-relative paths left out: a file, or a directory ending in "/".
PRIVATE = ("labs/README.md", "labs/INSTRUCTOR.md", "labs/PLATFORM.md", "harness/tests/", "results/", ".ci/")
# The student's front page takes the instructor's place.
RENAMED = {"labs/STUDENT.md": "labs/README.md"}
# Spelt in two pieces so that this file does not carry it.
INSTRUCTOR_MARK = "PKSMTB-" + "INSTRUCTOR-ONLY"


def is_private(rel: str, private: tuple[str, ...] = PRIVATE) -> bool:
    return any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in private)


def source_files(top: Path) -> list[str]:
    """TOP's files tracked by git (as they are on disk): an untracked file,
    a note of the instructor's say, never goes out."""
    r = subprocess.run(["git", "-C", str(top), "ls-files", "-z", "--cached"],
                       capture_output=True)
    if r.returncode:
        raise labs.LabError(f"{top}: not a git checkout (git ls-files: "
                            f"{r.stderr.decode(errors='replace').strip()}); the student "
                            "edition is made from the instructor's checkout")
    return sorted({f for f in r.stdout.decode().split("\0") if f})


def with_standins(text: str, n: int, standins: list[str], where: str) -> str:
    """TEXT with the body of every LAB N region replaced by its stand-in,
    the markers kept; LabError if the regions and stand-ins do not pair up."""
    with labs.region_errors():
        m = labregion.split(text, n, where)
    if len(m.regions) != len(standins):
        raise labs.LabError(f"{where}: {len(m.regions)} LAB {n} regions, "
                            f"{len(standins)} stand-ins")
    return labregion.fill(m, [labregion.indented(s, r.indent)
                              for r, s in zip(m.regions, standins)])


def lab_texts(top: Path) -> dict[str, str]:
    """The student edition's text of every lab file (repo-relative path:
    text), each lab's regions holding their stand-ins."""
    out: dict[str, str] = {}
    for n in sorted(labs.lab_dirs()):
        lab = labs.load_lab(n)
        for f in lab.files:
            rel = f.solution.as_posix()
            text = out.get(rel, (top / rel).read_text())
            out[rel] = with_standins(text, n, f.standins or f.stubs, rel)
    return out


def build(out: Path, top: Path = paths.TOP, private: tuple[str, ...] = PRIVATE,
          verbatim: frozenset[str] = frozenset(), check: bool = True) -> Path:
    """OUT/NAME: the student edition of TOP, and OUT/NAME.tar.gz.

    PRIVATE and VERBATIM (lab files copied as they are) exist for the
    test that shows a leaky edition is caught; CHECK=False lets a marked
    instructor page through for the same test."""
    root = out / NAME
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    texts = lab_texts(top)
    renamed_to = set(RENAMED.values())
    for rel in source_files(top):
        src = top / rel
        if not os.path.lexists(src) or (rel in renamed_to and rel not in RENAMED):
            continue                    # deleted, or replaced by a renamed page
        if is_private(rel, private) and rel not in RENAMED:
            continue
        dest = root / RENAMED.get(rel, rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dest.symlink_to(os.readlink(src))
            continue
        if rel in texts and rel not in verbatim:
            dest.write_text(texts[rel])
            shutil.copymode(src, dest)
        else:
            shutil.copy2(src, dest)
        if check and INSTRUCTOR_MARK.encode() in dest.read_bytes():
            shutil.rmtree(root)
            raise labs.LabError(f"{rel} carries {INSTRUCTOR_MARK} but is not left out of "
                                "the student edition: add it to edition.PRIVATE")
    (root / labs.EDITION_FILE.relative_to(paths.TOP)).write_text(labs.STUDENT_EDITION + "\n")
    tarball(root, out / f"{NAME}.tar.gz")
    return root


def tarball(root: Path, dest: Path) -> Path:
    """ROOT as DEST (gzip), its members sorted, owned by nobody in particular."""
    tmp = dest.with_name(dest.name + ".tmp")

    def anon(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        return ti

    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(root, arcname=root.name, recursive=False, filter=anon)
        for p in sorted(root.rglob("*")):
            tar.add(p, arcname=f"{root.name}/{p.relative_to(root).as_posix()}",
                    recursive=False, filter=anon)
    tmp.replace(dest)
    return dest
