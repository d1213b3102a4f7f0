"""A kernel tree whose PKSM files are the checkout's but for a few, built
incrementally from one of the checkout's builds.

Labs grade a student's files this way and ``make mutants`` builds each
deliberately broken engine this way.  ROOT is laid out like a checkout:

* ``ROOT/linux/src``: a hard-link copy of the prepared tree (``cp -al``);
  PKSM's files in it are links to ``ROOT/pksm``;
* ``ROOT/pksm``: regular copies of the checkout's PKSM files, the
  overriding ones in their place (sync_file(): a file whose content
  changed is written anew, so its mtime is now and the incremental build
  recompiles it, whatever the timestamps of what it was copied from);
* ``ROOT/build/kernel/BASE``: a copy of the checkout's build directory of
  BASE with the absolute paths Kbuild saved moved to ROOT's.

Only the changed files and the link are redone by the build.  The tree is
made again when BASE's configuration or the prepared tree changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from . import buildinfo, kernel, paths

JOBS = os.cpu_count() or 1
STAMP = ".base-stamp"


def _base_stamp(base_dir: Path) -> str:
    parts = [base_dir / ".frags-sum", paths.KSRC / ".pksmtb-stamp"]
    return "".join(p.read_text() if p.is_file() else "-" for p in parts)


def pksm_files() -> dict[str, Path]:
    """PKSM's files that the kernel tree links to: path under pksm/ -> file
    (the patches, notes and hidden files are not linked)."""
    top = paths.TOP / "pksm"
    out: dict[str, Path] = {}
    for f in sorted(top.rglob("*")):
        rel = f.relative_to(top).as_posix()
        if not f.is_file() or rel.startswith("patches/") or f.suffix == ".md" \
                or f.name.startswith("."):
            continue
        out[rel] = f
    return out


def _built_from(base_dir: Path) -> dict[str, str]:
    """sha256 of each PKSM file (path under pksm/) the build in BASE_DIR
    was made from, from its build record; {} if it has none readable."""
    try:
        rec = json.loads((base_dir / buildinfo.RECORD).read_text())
    except (OSError, ValueError):
        return {}
    files = rec.get("pksm_files") if isinstance(rec, dict) else None
    if not isinstance(files, dict):
        return {}
    return {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str)}


def overlay_tree(base: str, files: Mapping[str, Path | bytes], root: Path) -> Path:
    """Lay ROOT out with PKSM's files but for FILES (path under pksm/ ->
    the file to use instead, or its content); returns ROOT's build
    directory of BASE.  kernel.BuildMissing if the checkout has no build
    of BASE."""
    base_dir = paths.KBUILD / base
    if not (base_dir / "linux").is_file():
        raise kernel.BuildMissing(f"no build of {base} to start from: "
                                  f"run 'make kernel-{base}' first")
    ours = pksm_files()
    unknown = sorted(set(files) - set(ours))
    if unknown:
        raise ValueError(f"not PKSM files the kernel links: {', '.join(unknown)}")
    src, pk = root / "linux" / "src", root / "pksm"
    out = root / "build" / "kernel" / base
    stamp = root / STAMP
    if not (stamp.is_file() and stamp.read_text() == _base_stamp(base_dir)):
        shutil.rmtree(root, ignore_errors=True)
        src.parent.mkdir(parents=True)
        out.parent.mkdir(parents=True)
        # The tree and the build as they are, not links to them (a checkout
        # whose linux/src or build/ is a link to another's): a copied link
        # would make the lab's file links below land in that tree.
        real_src, real_base = paths.KSRC.resolve(), base_dir.resolve()
        subprocess.run(["cp", "-al", str(real_src), str(src)], check=True)
        subprocess.run(["cp", "-a", str(real_base), str(out.parent)], check=True)
        if src.is_symlink() or out.is_symlink():
            raise ValueError(f"{src} or {out} is a link: the lab tree must be its own")
        # Kbuild names them by the path its working directory resolves to.
        old_src, old_out = str(real_src), str(real_base)
        new_src, new_out = str(src.resolve()), str(out.resolve())
        # Kbuild's saved commands and dependencies name the tree and the
        # build directory by absolute path: move them to ROOT's.
        listed = subprocess.run(["grep", "-rlIF", "-e", old_src, "-e", old_out, str(out)],
                                capture_output=True, text=True).stdout.split()
        for name in listed:
            p = Path(name)
            if p.is_symlink():
                continue
            text = p.read_text(errors="surrogateescape")
            p.write_text(text.replace(old_out, new_out).replace(old_src, new_src),
                         errors="surrogateescape")
        for link in out.rglob("*"):
            if link.is_symlink():
                t = os.readlink(link)
                if t.startswith((old_src, old_out)):
                    link.unlink()
                    link.symlink_to(t.replace(old_out, new_out).replace(old_src, new_src))
        stamp.write_text(_base_stamp(base_dir))
    built = _built_from(base_dir)
    for rel, f in ours.items():
        if rel not in files and not (pk / rel).exists() and \
                built.get(rel) == buildinfo.sha256_bytes(f.read_bytes()):
            # the checkout's file, which the base was built from (its build
            # record says so): its mtime kept, so that nothing built from
            # it is built again.  A file the base was not built from (a
            # build made from another checkout's sources) is written anew
            # below, so that the build recompiles it.
            (pk / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, pk / rel)
        else:
            sync_file(files.get(rel, f), pk / rel)
        link = src / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if not (link.is_symlink() and os.readlink(link) == str(pk / rel)):
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(pk / rel)
    return out


def sync_file(source: Path | bytes, dest: Path) -> bool:
    """Make DEST a regular file with SOURCE's content (SOURCE a file, or
    the content itself); True if it changed.

    A changed DEST is written anew, so its mtime is now: make rebuilds
    what depends on it even when SOURCE is older than the objects built
    from the previous content (a submission unpacked from an archive, or
    the solution after a student's file).  Unchanged, DEST keeps its mtime
    and nothing is rebuilt."""
    data = source if isinstance(source, bytes) else source.read_bytes()
    if dest.is_file() and not dest.is_symlink() and dest.read_bytes() == data:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(dest)
    return True


def build(root: Path, base: str, log: Path, prefix: list[str] | None = None) -> int:
    """Build ROOT's kernel of BASE (incremental), the output in LOG; make's
    exit status.  A failed build leaves no binary behind (nothing may boot
    what an older build left).  PREFIX: a command to run make under (a
    sandbox, in which the build directory alone is writable: ccache is
    then only read)."""
    out = root / "build" / "kernel" / base
    cc = "ccache gcc" if shutil.which("ccache") else "gcc"
    env = dict(os.environ, CCACHE_BASEDIR=str(paths.TOP))
    if prefix:
        env.update(CCACHE_READONLY="1", CCACHE_TEMPDIR="/dev/shm")
    with open(log, "w") as f:
        rc = subprocess.run([*(prefix or []), "make", "-s", "-C", str(root / "linux" / "src"),
                             "ARCH=um",
                             f"O={out}", f"CC={cc}", f"-j{JOBS}", "linux"],
                            stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    if rc != 0 and (out / "linux").exists():
        (out / "linux").unlink()
    return rc
