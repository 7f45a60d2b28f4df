"""Facts about this machine and software that timings depend on.

:func:`machine_info` reports everything; :func:`fingerprint` keeps only stable facts (CPU model,
core count, ISA flags that change which kernels run, memory size, thread setting) so that a
baseline recorded on one runner is recognised on another runner of the same type. Clock speed and
load are never part of it.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")
LIBRARIES = (
    "torch",
    "transformers",
    "openvino",
    "nncf",
    "intel-extension-for-pytorch",
    "pytest-cxrperf",
)


@lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in info:
            info[key.strip()] = value.strip()
    return info


def cpu_model() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def isa_flags() -> list[str]:
    flags = set(_cpuinfo().get("flags", "").split())
    return [f for f in ISA_FLAGS if f in flags]


def cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def memory_gib() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            match = re.search(r"MemTotal:\s+(\d+) kB", handle.read())
        return round(int(match.group(1)) / 1024**2) if match else 0
    except OSError:
        return 0


def library_versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


@lru_cache(maxsize=1)
def environment_id() -> str:
    """The software a timing depends on, as a short id: ``py3.11-torch2.13.0-<hash8>`` (the hash
    covers every library in :data:`LIBRARIES` but this plugin)."""
    libraries = {k: v for k, v in library_versions().items() if k != "pytest-cxrperf"}
    python = ".".join(platform.python_version_tuple()[:2])
    digest = hashlib.sha256(repr(sorted(libraries.items())).encode()).hexdigest()[:8]
    torch = libraries.get("torch", "none").split("+")[0]
    return f"py{python}-torch{torch}-{digest}"


def fingerprint_facts(threads: int) -> dict[str, object]:
    return {
        "cpu": cpu_model(),
        "cores": cpu_count(),
        "isa": isa_flags(),
        "memory_gib": memory_gib(),
        "threads": threads,
        "arch": platform.machine(),
    }


def fingerprint(threads: int) -> str:
    """A readable, stable id: ``<cpu-slug>-<cores>c-t<threads>-<hash8>``."""
    facts = fingerprint_facts(threads)
    digest = hashlib.sha256(repr(sorted(facts.items())).encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9]+", "-", str(facts["cpu"]).lower()).strip("-")[:32] or "cpu"
    return f"{slug}-{facts['cores']}c-t{threads}-{digest}"


def machine_info(threads: int) -> dict[str, object]:
    return {
        **fingerprint_facts(threads),
        "fingerprint": fingerprint(threads),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": library_versions(),
    }
