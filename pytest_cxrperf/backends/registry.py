"""The backend registry: which backends exist, by name, and the one that is the reference.

Backends come from one place, the entry-point group ``pytest_cxrperf.backends`` (name -> Backend
subclass), built-ins included, imported only when used; :func:`register_backend` adds one defined
in a ``conftest.py``.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from ..errors import BackendUnavailable
from .base import Backend
from .precision import PRECISIONS

ENTRY_POINT_GROUP = "pytest_cxrperf.backends"
# the reference backend (eager fp32): every other backend is compared with it, and it is the in-run
# control of their latency; eager itself is timed against the machine probe
REFERENCE_BACKEND = "eager"

_registry: dict[str, type[Backend]] = {}  # loaded or registered classes, by name
_entry_point_errors: dict[str, str] = {}


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Register a Backend subclass under ``cls.name`` (usable as a class decorator), for a backend
    defined where no package metadata can name it (a ``conftest.py``). It takes precedence over
    an entry point of the same name. Installed backends, built-ins included, are entry points."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no name")
    if cls.precision not in PRECISIONS:
        raise ValueError(f"{cls.__qualname__}.precision must be one of {PRECISIONS}")
    _registry[cls.name] = cls
    return cls


def _entry_points() -> dict[str, Any]:
    """The installed backends, by name, not yet imported (the first of a duplicated name)."""
    found: dict[str, Any] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def _load(name: str, ep: Any) -> type[Backend] | None:
    """Import one entry point's class and register it; a failure is kept as the backend's error
    (a broken third-party backend must not break the others)."""
    try:
        cls = ep.load()
    except Exception as exc:
        _entry_point_errors[name] = f"entry point {ep.value} failed to import: {exc}"
        return None
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        _entry_point_errors[name] = f"entry point {ep.value} is not a Backend subclass"
        return None
    if not cls.name:
        cls.name = name
    if cls.name != name:
        _entry_point_errors[name] = (
            f"entry point {ep.value} names its backend {cls.name!r}, not {name!r}"
        )
        return None
    return register_backend(cls)


def backend_names() -> list[str]:
    """Every known backend name, in a stable order (eager first: it is the reference). Nothing
    is imported to list them."""
    names = sorted(set(_registry) | set(_entry_points()))
    return sorted(names, key=lambda n: (n != REFERENCE_BACKEND, n))


def get_backend_class(name: str) -> type[Backend]:
    """The class of backend ``name``: registered in this process, or imported from its entry
    point on first use."""
    if name in _registry:
        return _registry[name]
    if name not in _entry_point_errors:
        ep = _entry_points().get(name)
        if ep is None:
            raise BackendUnavailable(
                f"unknown backend {name!r}; known backends: {', '.join(backend_names())}; "
                f"backends come from the entry-point group {ENTRY_POINT_GROUP!r} of installed "
                "packages (is pytest-cxrperf installed, not just on the path?)"
            )
        cls = _load(name, ep)
        if cls is not None:
            return cls
    raise BackendUnavailable(f"backend {name!r}: {_entry_point_errors[name]}")
