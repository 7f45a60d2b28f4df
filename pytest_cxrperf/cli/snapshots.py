"""Reading baseline stores for ``cxrperf baselines``: a directory, one file, or a git revision."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..gate.baselines import Baseline, BaselineError, BaselineStore, read_baseline

Snapshot = dict[str, "Baseline | str"]  # relative path -> baseline, or why it cannot be read


def snapshot(root: Path) -> Snapshot:
    found: Snapshot = {}
    for path, record in BaselineStore(root).records():
        key = path.relative_to(root).as_posix()
        found[key] = record if isinstance(record, Baseline) else str(record)
    return found


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BaselineError(f"git {' '.join(args)}: {done.stderr.strip() or 'failed'}")
    return done.stdout


def load_side(spec: str) -> tuple[Snapshot, bool]:
    """A store, one file, or ``REV:PATH`` read from git (``origin/main:baselines``).

    Returns the baselines by path relative to the store root, and whether ``spec`` is one file."""
    import json

    path = Path(spec)
    if path.is_file():
        try:
            return {path.name: read_baseline(path)}, True
        except BaselineError as exc:
            return {path.name: str(exc)}, True
    if path.is_dir():
        return snapshot(path), False
    rev, sep, inside = spec.partition(":")
    if not sep or not rev:
        raise BaselineError(f"{spec}: no such file or directory (nor a git REV:PATH)")
    inside = inside.rstrip("/")
    _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")  # an unknown REV is an error
    try:
        kind = _git("cat-file", "-t", f"{rev}:{inside}").strip()
    except BaselineError:  # the revision has no baselines yet: everything on the other side is new
        return {}, False
    if kind == "blob":
        names, single = [inside], True
    else:
        listed = _git("ls-tree", "-r", "--name-only", rev, "--", inside).splitlines()
        names, single = [n for n in listed if n.endswith(".json")], False
    found: Snapshot = {}
    for name in names:
        key = Path(name).name if single else Path(name).relative_to(inside).as_posix()
        if not single and len(Path(key).parts) not in (3, 4):  # pre-class, class layout
            continue
        where = f"{rev}:{name}"
        try:
            found[key] = Baseline.from_json(json.loads(_git("show", where)), where)
        except json.JSONDecodeError as exc:
            found[key] = f"{where}: corrupt JSON ({exc.msg} at line {exc.lineno})"
        except BaselineError as exc:
            found[key] = str(exc)
    return found, single
