"""pytest-cxrperf: latency and output-equivalence gate for chest-X-ray report models on CPUs.

Public API for backend authors and for scripts that drive the model outside pytest. Names are
imported on first use, so ``import pytest_cxrperf`` (and the ``cxrperf`` command) stays fast and
does not load torch until it is needed.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Availability": "backends.base",
    "Backend": "backends.base",
    "Generation": "backends.base",
    "Runner": "backends.base",
    "StageTimings": "backends.base",
    "backend_names": "backends.registry",
    "get_backend_class": "backends.registry",
    "register_backend": "backends.registry",
    "BackendUnavailable": "errors",
    "CxrPerfError": "errors",
    "ModelLoadError": "errors",
    "SettingsError": "errors",
    "StudyError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pytest_cxrperf' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
