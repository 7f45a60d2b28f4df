"""pytest-cxrperf: latency and output-equivalence gate for chest-X-ray report models on CPU backends.

Public API for backend authors and for scripts that drive the model outside pytest.
"""

from .backends.base import (
    Availability,
    Backend,
    Generation,
    Runner,
    StageTimings,
    backend_names,
    get_backend_class,
    register_backend,
)
from .errors import BackendUnavailable, CxrPerfError, ModelLoadError, SettingsError, StudyError

__all__ = [
    "Availability",
    "Backend",
    "BackendUnavailable",
    "CxrPerfError",
    "Generation",
    "ModelLoadError",
    "Runner",
    "SettingsError",
    "StageTimings",
    "StudyError",
    "backend_names",
    "get_backend_class",
    "register_backend",
]
