"""``cxrperf baselines migrate``: files of the pre-class layout (``<fingerprint>/<model>/``) moved
to the machine-class layout (``<cpu>/<environment>/<model>/``, schema version 3), in place.

Apart from :mod:`.baselines` because it is a one-off conversion, not what the store does on
every run (the store only reads such files, and never judges them against another class).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .baselines import SCHEMA_VERSION, BaselineError, BaselineStore

if TYPE_CHECKING:
    from ..machine import MachineClass


@dataclass(frozen=True)
class Migration:
    """What ``cxrperf baselines migrate`` did with one file of the pre-class layout."""

    path: Path
    target: Path | None  # where it went; None where it was left
    reason: str = ""


def migrate(
    store: BaselineStore,
    here: Callable[[int], MachineClass],
    legacy_fingerprint: Callable[[int], str],
) -> list[Migration]:
    """Move the store's pre-class files recorded under this host's pre-class fingerprint
    (``legacy_fingerprint(threads)``) to the machine class layout (schema version 3): their
    class is this host's (``here(threads)``) in the environment each file records. Files of
    other hosts are left (their CPU family and model cannot be told from them), as are files
    that a file of the new layout already replaces."""
    from dataclasses import replace

    done: list[Migration] = []
    for path, record in list(store.records()):
        if isinstance(record, BaselineError):
            if path.parent.parent.parent == store.root:  # a pre-class path that did not load
                done.append(Migration(path, None, f"unreadable, left: {record}"))
            continue
        if not record.legacy:
            continue
        this_host = legacy_fingerprint(record.threads)
        if record.fingerprint != this_host:
            done.append(
                Migration(
                    path,
                    None,
                    f"recorded on another host ({record.fingerprint}, this is "
                    f"{this_host}): its CPU class cannot be told from the file; left. "
                    "Run `cxrperf baselines migrate` on such a host, or refresh there",
                )
            )
            continue
        cls = here(record.threads)
        cls = replace(cls, environment=record.environment or cls.environment)
        moved = replace(
            record, fingerprint=cls.key, machine_class=cls.to_dict(), schema_version=SCHEMA_VERSION
        )
        target = store.path_for(cls.key, record.model, record.backend)
        if target.exists():
            done.append(Migration(path, None, f"{target} exists already; left"))
            continue
        store.write(moved)
        path.unlink()
        for folder in (path.parent, path.parent.parent):
            if folder != store.root and not any(folder.iterdir()):
                folder.rmdir()
        done.append(Migration(path, target))
    return done
