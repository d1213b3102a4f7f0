"""The kernels a bench boots, pinned as it starts (as a sweep pins its builds).

A bench's figures are only worth what it can say about the kernel behind
them.  Each bench (harness/bench_*.py) pins, as it starts, every build it
will boot: the build id, revision, dirty flag and the rest of the build
record beside the binary (buildinfo.pin()), with the build's variant and
flavour.  Its results carry the pins (to_json(), "builds") and a header
(header()) that names them, and the harness's own revision apart, labelled
as such: the harness that ran the bench, not what the kernels were built
from.

Every boot is then held to its pin: a run by the id its banner carried
(check_run(), from meta.json), a bare boot by its banner (check_boot()).
A boot of another build (the tree was rebuilt under the bench) is marked
("build_changed") and ends the bench: BuildChanged, a SystemExit with the
reason, which a bench may catch to write what it has first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from . import buildinfo, kernel, results


class BuildChanged(SystemExit):
    """A boot's kernel is not the build the bench pinned."""


@dataclass
class Pins:
    """The builds a bench boots, by name (pksm, ksm, pksm-up...)."""

    builds: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: list[dict[str, Any]] = field(default_factory=list)
    harness_revision: str = ""

    @classmethod
    def of(cls, builds: Iterable[kernel.KernelBuild]) -> Pins:
        """Pin BUILDS (kernel.find_kernel()) now, as the bench starts."""
        pins = cls(harness_revision=kernel.git_revision())
        for kb in builds:
            pins.add(kb)
        return pins

    def add(self, kb: kernel.KernelBuild) -> dict[str, Any]:
        rec = buildinfo.read_record(kb.binary.parent) or {}
        p = {"name": kb.name, "variant": kb.variant, "flavour": kb.flavour,
             "binary": str(kb.binary), **buildinfo.pin(kb.binary),
             "dirty_paths": rec.get("dirty_paths"), "tarball": rec.get("tarball")}
        self.builds[kb.name] = p
        return p

    def to_json(self) -> dict[str, Any]:
        """What a bench's results record: the pins, the boots of another
        build (none in a bench that finished), the harness's revision, the
        host (its CPU model: figures of two hosts do not compare)."""
        return {"builds": self.builds, "build_changed": self.changed,
                "harness_revision": self.harness_revision, **results.host_identity()}

    def header(self) -> list[str]:
        """Lines naming the pinned builds, for a report's head."""
        out = [f"kernel {name}: {describe(p)}" for name, p in self.builds.items()]
        out.append(f"harness revision (the harness that ran the bench, not the kernel's "
                   f"sources): {self.harness_revision}")
        for c in self.changed:
            out.append(f"BUILD CHANGED: {c['detail']}")
        return out

    def check_run(self, key: str, meta: dict[str, Any]) -> None:
        """Hold a run (its meta.json) to the pin of the build it booted."""
        name, bid, sha = buildinfo.booted(meta)
        self._check(key, name, bid, sha)

    def check_boot(self, key: str, kb: kernel.KernelBuild, uts_version: str | None) -> None:
        """Hold a bare boot of KB (no run directory) to its pin, by the id
        its banner carried (else the binary's hash now)."""
        self._check(key, kb.name, buildinfo.banner_id(uts_version),
                    buildinfo.binary_sha256(kb.binary))

    def _check(self, key: str, name: str, bid: str | None, sha: str | None) -> None:
        p = self.builds.get(name)
        if p is None:
            detail = f"{key}: booted {name}, a build the bench did not pin"
        elif buildinfo.same_build(p, bid, sha):
            return
        else:
            got = bid or f"binary {str(sha)[:12]}"
            detail = (f"{key}: {name} was build {got}, the bench pinned build "
                      f"{p.get('id') or 'binary ' + str(p.get('binary_sha256'))[:12]} "
                      "as it started: the kernel was rebuilt under the bench, so its "
                      "figures would mix two builds")
        self.changed.append({"key": key, "build": name, "booted_id": bid,
                             "booted_binary_sha256": sha, "detail": detail,
                             "utc": results.utc_now()})
        raise BuildChanged(f"bench: BUILD CHANGED: {detail}; the bench stops (start it "
                           "again once the kernel is as wanted)")


def describe(p: dict[str, Any]) -> str:
    """One line of a pin: id, revision and dirty flag, variant and flavour."""
    what = f"variant {p.get('variant')}" + (f", flavour {p['flavour']}"
                                            if p.get("flavour") else "")
    if not p.get("id"):
        return (f"unrecorded build ({p.get('problem') or 'no build record'}), binary "
                f"{str(p.get('binary_sha256'))[:12]}, {what}")
    rev = str(p.get("revision") or "unknown")[:12]
    dirty = ""
    if p.get("dirty"):
        n = len(p.get("dirty_paths") or [])
        dirty = f", dirty ({n} source path{'s' if n != 1 else ''} differ{'s' if n == 1 else ''})"
    clean = p.get("clean_at") or []
    if clean:
        dirty += f"; the sources of revision {', '.join(str(c)[:12] for c in clean)}"
    return f"build {p['id']} (revision {rev}{dirty}; built {p.get('built_utc')}), {what}"
