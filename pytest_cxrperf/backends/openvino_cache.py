"""On-disk cache of exported OpenVINO IR, keyed by weights, export settings and library versions.

Exporting the ``bench`` model takes tens of seconds, so each session reuses the IR of an earlier
one. An entry is a folder ``<root>/<key>/`` with the IR files and ``manifest.json`` (sizes and
sha256 of every file). Entries are written atomically: the export goes to a temporary sibling
folder, the manifest is written last, and the folder is moved into place with ``os.replace``.
Readers verify the manifest before loading, so an interrupted write, a truncated ``.bin`` or a
bit flip means a rebuild, never a model that silently computes something else. A file lock per
key keeps parallel sessions (pytest-xdist workers) from exporting the same model twice.

Root: the ``cache_dir`` argument; else ``$CXRPERF_CACHE_DIR/openvino``; else
``platformdirs.user_cache_dir("pytest-cxrperf")/openvino``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..machine import library_versions

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ENV_VAR = "CXRPERF_CACHE_DIR"
_CHUNK = 1 << 22


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where OpenVINO entries live (see the module docstring for the order of precedence)."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env) / "openvino"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("pytest-cxrperf")) / "openvino"


EXPORT_LIBRARIES = ("openvino", "torch", "transformers")  # and "nncf" for compressed weights


def export_versions(*extra: str) -> dict[str, str]:
    """Versions that change what an export produces (a new converter may emit a different graph).

    Read from :func:`pytest_cxrperf.machine.library_versions` (every name here is one of its
    ``LIBRARIES``); a package that is not installed is ``"absent"``, as cache keys have always
    spelled it, so the keys of existing entries stay what they were."""
    found = library_versions()
    return {name: found.get(name, "absent") for name in (*EXPORT_LIBRARIES, *extra)}


def cache_key(
    weights_hash: str, settings: Mapping[str, object], versions: Mapping[str, str]
) -> str:
    """Short sha256 of everything that determines the exported files."""
    payload = {
        "format": FORMAT_VERSION,
        "weights": weights_hash,
        "settings": dict(settings),
        "versions": dict(versions),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_entry(folder: Path) -> str | None:
    """``None`` when the entry is complete and intact, else why it is not."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return "no manifest (incomplete write)"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = dict(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable manifest: {exc}"
    if manifest.get("format") != FORMAT_VERSION:
        return f"format {manifest.get('format')} != {FORMAT_VERSION}"
    for name, meta in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != meta["size"]:
            return f"{name} has {size} bytes, the manifest says {meta['size']}"
        if _sha256(path) != meta["sha256"]:
            return f"{name} does not match its sha256"
    return None


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    key: str
    hit: bool
    export_s: float  # 0.0 on a hit
    verify_s: float
    rebuilt_because: str | None  # why an existing entry was thrown away


def _discard(folder: Path) -> None:
    """Move aside first (atomic), then delete: a reader never sees a half-deleted entry."""
    if not folder.exists():
        return
    trash = folder.with_name(f".trash-{folder.name}-{uuid.uuid4().hex[:8]}")
    os.replace(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def ensure_entry(
    root: Path,
    key: str,
    export: Callable[[Path], None],
    metadata: Mapping[str, object],
) -> CacheEntry:
    """Return a verified entry for ``key``, calling ``export(tmp_dir)`` to build it if needed."""
    from time import perf_counter

    from filelock import FileLock

    root.mkdir(parents=True, exist_ok=True)
    final = root / key
    with FileLock(str(root / f"{key}.lock")):
        start = perf_counter()
        problem = verify_entry(final) if final.exists() else None
        verify_s = perf_counter() - start
        if final.exists() and problem is None:
            return CacheEntry(final, key, True, 0.0, verify_s, None)
        _discard(final)
        start = perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=root))
        try:
            export(tmp)
            files = {
                p.name: {"size": p.stat().st_size, "sha256": _sha256(p)}
                for p in sorted(tmp.iterdir())
                if p.is_file()
            }
            manifest = {"format": FORMAT_VERSION, "key": key, "files": files, **metadata}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return CacheEntry(final, key, False, perf_counter() - start, verify_s, problem)
