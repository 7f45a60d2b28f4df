"""Run settings from the command line and ``[tool.pytest.ini_options]``, validated once.

The command line wins over ini. Every invalid value becomes a :class:`SettingsError` that names the
option and says what is accepted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SettingsError

DEFAULT_MODEL = "tiny"
DEFAULT_ROUNDS = 5
DEFAULT_WARMUP = 1
DEFAULT_MAX_NEW_TOKENS = 32

_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(?P<mods>(\+[A-Za-z_]+=[^+,]+)*)$")


@dataclass(frozen=True)
class BackendSpec:
    """A backend as named on the command line: ``eager`` or ``eager+slow=1.25``.

    ``slow`` makes every generation take that many times as long (by waiting), to prove that the
    gate catches a regression of that size; it is compared with the base backend's baseline.
    """

    name: str
    slow: float = 1.0

    @property
    def label(self) -> str:
        return self.name if self.slow == 1.0 else f"{self.name}+slow={self.slow:g}"

    @classmethod
    def parse(cls, text: str) -> BackendSpec:
        match = _SPEC.match(text.strip())
        if not match:
            raise SettingsError(
                f"--cxr-backend: cannot parse {text!r}; write a backend name, optionally with "
                "a synthetic slowdown such as 'eager+slow=1.25'"
            )
        slow = 1.0
        for modifier in filter(None, match["mods"].split("+")):
            key, _, value = modifier.partition("=")
            if key != "slow":
                raise SettingsError(f"--cxr-backend: unknown modifier {key!r} in {text!r}")
            try:
                slow = float(value)
            except ValueError:
                raise SettingsError(f"--cxr-backend: slow={value!r} is not a number") from None
            if not 1.0 <= slow <= 100.0:
                raise SettingsError(f"--cxr-backend: slow={value} must be between 1 and 100")
        return cls(match["name"], slow)


@dataclass(frozen=True)
class Settings:
    backend_request: str  # "all" or the comma list as given
    backends: tuple[BackendSpec, ...]  # empty when backend_request == "all" (resolved later)
    model: str = DEFAULT_MODEL
    rounds: int = DEFAULT_ROUNDS
    warmup: int = DEFAULT_WARMUP
    threads: int = 1
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    json_path: Path | None = None
    studies_dir: Path | None = None
    tolerances: Mapping[str, float] = field(default_factory=dict)

    @property
    def select_all(self) -> bool:
        return self.backend_request == "all"


def parse_backend_request(value: str) -> tuple[str, tuple[BackendSpec, ...]]:
    text = value.strip()
    if not text:
        raise SettingsError("--cxr-backend is empty; use 'all' or a comma list such as 'eager,compile'")
    if text == "all":
        return "all", ()
    parts = [p.strip() for p in text.split(",")]
    if any(not p for p in parts):
        raise SettingsError(f"--cxr-backend={value!r} has an empty entry")
    if "all" in parts:
        raise SettingsError("--cxr-backend: 'all' cannot be combined with other names")
    specs = tuple(BackendSpec.parse(p) for p in parts)
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise SettingsError(f"--cxr-backend={value!r} names a backend twice")
    return text, specs


def _positive_int(option: str, value: object, minimum: int = 1) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise SettingsError(f"{option}={value!r} is not an integer") from None
    if number < minimum:
        raise SettingsError(f"{option}={number} must be at least {minimum}")
    return number


def parse_tolerances(lines: list[str]) -> dict[str, float]:
    """Lines ``KEY.METRIC = VALUE`` where KEY is a precision (fp32, bf16, int8-weights) or a
    backend name, e.g. ``bf16.prefill_rel_err = 0.08`` or ``openvino-int8.teacher_top1 = 0.9``."""
    result: dict[str, float] = {}
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or "." not in key:
            raise SettingsError(
                f"cxr_tolerances: {raw!r} must look like 'bf16.prefill_rel_err = 0.08'"
            )
        try:
            result[key] = float(value)
        except ValueError:
            raise SettingsError(f"cxr_tolerances: {value.strip()!r} is not a number") from None
    return result


def build_settings(option: Callable[[str], object], ini: Callable[[str], object]) -> Settings:
    """``option(name)`` reads a CLI value (None when not given); ``ini(name)`` reads the ini."""

    def pick(name: str) -> object:
        value = option(name)
        if value is None or value == "":
            value = ini(name)
        return None if value in ("", None, []) else value

    request, specs = parse_backend_request(str(pick("cxr_backend") or "eager"))
    threads_value = pick("cxr_threads")
    threads = (
        _positive_int("--cxr-threads", threads_value)
        if threads_value is not None
        else max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    )
    json_value = pick("cxr_json")
    studies_value = pick("cxr_studies")
    tolerance_lines = ini("cxr_tolerances") or []
    return Settings(
        backend_request=request,
        backends=specs,
        model=str(pick("cxr_model") or DEFAULT_MODEL),
        rounds=_positive_int("--cxr-rounds", pick("cxr_rounds") or DEFAULT_ROUNDS),
        warmup=_positive_int("--cxr-warmup", pick("cxr_warmup") or 0, minimum=0)
        if pick("cxr_warmup") is not None
        else DEFAULT_WARMUP,
        threads=threads,
        max_new_tokens=_positive_int(
            "--cxr-max-new-tokens", pick("cxr_max_new_tokens") or DEFAULT_MAX_NEW_TOKENS
        ),
        json_path=Path(str(json_value)) if json_value else None,
        studies_dir=Path(str(studies_value)) if studies_value else None,
        tolerances=parse_tolerances(list(tolerance_lines)),  # type: ignore[call-overload]
    )
