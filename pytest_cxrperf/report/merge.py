"""``cxrperf report merge``: one verdict over several runs (a CI matrix: machines, backend shards).

:meth:`RunResults.merge` joins the parts of *one* run (pytest-xdist workers) and refuses two
timings of one backend; runs on different machines are never merged into one row. Here each run
stays whole, keyed by its machine fingerprint, and a row is (machine, backend): the same backend
timed on two runner types is two rows, each judged against its own machine's baselines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..results import ResultsError, RunResults
from . import model
from .model import Run


@dataclass
class MergedReport:
    runs: list[Run] = field(default_factory=list)

    def add(self, results: RunResults, source: str = "") -> None:
        """Add one run under its machine fingerprint; a (machine, backend) pair seen before gets
        the machine key ``fingerprint #2`` (two jobs on one runner type), never a silent merge."""
        base = str(results.machine.get("fingerprint") or source or f"run {len(self.runs) + 1}")
        key, n = base, 1
        while any(
            machine == key and set(other.backends) & set(results.backends)
            for machine, other in self.runs
        ):
            n += 1
            key = f"{base} #{n}"
        self.runs.append((key, results))

    @property
    def failed(self) -> bool:
        return model.any_failed(self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "merged_runs": [
                {"machine": machine, "results": results.to_dict()} for machine, results in self.runs
            ],
            "failed": [
                {"machine": machine, "backend": label}
                for machine, results in self.runs
                for label in results.failed
            ],
        }


def read_results(path: Path) -> RunResults:
    """One ``--cxr-json`` file; a :class:`ResultsError` that names the file otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ResultsError(f"{path} is a directory; give the --cxr-json files") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        return RunResults.from_dict(data)
    except ResultsError as exc:
        raise ResultsError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultsError(f"{path}: not a cxrperf results file ({exc!r})") from None


def merge_files(paths: Iterable[Path]) -> MergedReport:
    report = MergedReport()
    for path in paths:
        report.add(read_results(path), source=path.name)
    return report
