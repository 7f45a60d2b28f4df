"""Errors the user can act on. Each message says what is wrong and what to do next."""


class CxrPerfError(Exception):
    """Base class for errors pytest-cxrperf reports to the user."""


class ModelLoadError(CxrPerfError):
    """A model preset or checkpoint directory cannot be used."""


class StudyError(CxrPerfError):
    """A study (images + metadata) cannot be read."""


class BackendUnavailable(CxrPerfError):
    """A backend was requested that cannot run here."""


class SettingsError(CxrPerfError):
    """An option or ini value is invalid."""


class CxrPerfWarning(UserWarning):
    """A setting that works but will mislead (e.g. more threads than cores)."""
