"""Every command in README.md and docs/ works as written (the cheap ones run).

Shell blocks are read line by line: harness commands run in process
(`run` and `sweep` with --dry-run added when they would boot; `list` and `show` against
a captured run under test_data/runs); make commands must name targets the
Makefile has and scenario files that exist; pytest commands name test files
that exist.  No kernel is built or booted.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from conftest import TEST_DATA
from pksmtb import cli, paths

DOCS = [paths.TOP / "README.md", *sorted((paths.TOP / "docs").glob("*.md"))]
CAPTURED_RUNS = TEST_DATA / "runs"


def shell_lines() -> list[tuple[str, str]]:
    """(file:line, command) of every line in a ```sh block, comments dropped."""
    out = []
    for doc in DOCS:
        inside = False
        for n, line in enumerate(doc.read_text().splitlines(), 1):
            if line.startswith("```"):
                inside = line.strip() == "```sh"
                continue
            cmd = line.split(" #", 1)[0].strip()
            if inside and cmd and not cmd.startswith("#"):
                out.append((f"{doc.relative_to(paths.TOP)}:{n}", cmd))
    return out


COMMANDS = shell_lines()


def test_docs_have_commands() -> None:
    assert len(COMMANDS) > 20
    assert (paths.TOP / "README.md").read_text().count("\n") <= 200


def test_every_linked_doc_exists() -> None:
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" not in target:
                assert (doc.parent / target).exists(), (doc, target)


def makefile_targets() -> set[str]:
    text = (paths.TOP / "Makefile").read_text()
    return set(re.findall(r"^([a-z][\w-]*)\s*:(?!=)", text, re.MULTILINE))


@pytest.mark.parametrize("where,cmd", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_command_works_as_written(where: str, cmd: str, capsys: pytest.CaptureFixture[str],
                                  tmp_path: Path) -> None:
    if re.fullmatch(r"\w+=\S+", cmd):          # PY=/usr/bin/python3
        return
    argv = shlex.split(cmd.replace("$PY", "/usr/bin/python3"))
    if argv[0] == "make":
        targets = [a for a in argv[1:] if "=" not in a]
        assert set(targets) <= makefile_targets(), (where, targets)
        for a in argv[1:]:
            name, _, value = a.partition("=")
            if value:
                assert name in ("SCENARIO", "VARIANT", "FLAVOUR", "ARGS", "LAB", "SOLUTION",
                                "FORCE", "INSTRUCTOR", "STUDENT", "N", "K", "TESTS"), (where, name)
            if name == "LAB":
                assert list((paths.TOP / "labs").glob(f"{int(value):02d}-*/lab.toml")), (where, a)
            if name == "TESTS":
                assert (paths.TOP / value).exists(), (where, value)
            if name == "SCENARIO":
                assert (paths.TOP / value).is_file(), (where, value)
        return
    assert argv[0] == "/usr/bin/python3", (where, cmd)
    if argv[1:3] == ["-m", "pytest"]:
        files = [a for a in argv if a.startswith("harness/tests/")]
        assert files and all((paths.TOP / f).is_file() for f in files), (where, files)
        return
    assert argv[1] == "harness/pksmtb.py", (where, cmd)
    args = argv[2:]
    if args[0] in ("run", "gdb") and "--dry-run" not in args:
        # what would boot: validated to the last option, not booted
        args = ["run", *[a for a in args[1:] if a != "-q"]]
        if "--batch" in args:
            i = args.index("--batch")
            assert (paths.TOP / args[i + 1]).is_file(), (where, args[i + 1])
            del args[i:i + 2]
        args.append("--dry-run")
    if args[0] == "sweep" and "--dry-run" not in args:
        args.append("--dry-run")            # checked to the last cell, not booted
    if args[0] in ("list", "show"):
        args += ["--results", str(CAPTURED_RUNS)]
    if args[0] == "frontier" and "--out" in args:
        args[args.index("--out") + 1] = str(tmp_path)   # the committed study is read, not rewritten
    assert cli.main(args) == 0, (where, capsys.readouterr().err)
