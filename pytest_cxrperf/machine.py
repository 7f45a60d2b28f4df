"""Facts about this machine and software that timings depend on, and the machine class they make.

**The machine class** is what a baseline is recorded for and judged against: the facts that move a
backend's speed *relative to another's*, and nothing that only names a host. Two hosts of one
class share baselines; a host of another class never is judged against them (README, "Machine
classes"). Its key, ``<cpu>/<environment>``, is the first two levels of the baseline store:

* ``<cpu>``: ``<vendor>-f<family>m<model>-<features>-<cores>c-t<threads>``, e.g.
  ``amd-f25m17-avx2+avx512f+avx512_bf16+avx512_vnni-2c-t1``. Family and model name the
  microarchitecture (AMD 25/17 is Zen 4, 25/1 Zen 3); the features are those of
  :data:`CLASS_FEATURES` the CPU has (bf16 is native only with AVX512_BF16 or AMX, int8 dot
  products need VNNI, IPEX's bf16 prepack needs AVX-512 BW/VL/DQ or AVX-NE-CONVERT); cores are
  the CPUs this process may run on, threads the ``--cxr-threads`` setting.
* ``<environment>``: :func:`environment_id`, the Python and library versions.

Clock speed, memory size, load and the host's name are never part of it. ``CXRPERF_CPUINFO``
names a file in ``/proc/cpuinfo`` form to read instead of the real one: it changes the class and
what the plugin believes the CPU can do (tests; a dry run of another class's gate), never the
kernels that really run.

``ONEDNN_MAX_CPU_ISA`` (oneDNN's own cap, honoured by torch's and IPEX's oneDNN) does change the
kernels: ``AVX2`` on an AVX-512 host runs bf16 emulated and int8 without VNNI, and IPEX's bf16
prepack refuses to run. The features it caps away leave the class too (:func:`cpu_flags`), so a
capped run is its own class and the plugin decides what can run from what oneDNN will use.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

CPUINFO_ENV = "CXRPERF_CPUINFO"
# the ISA features that change which kernels run, in the order the key lists them (x86, then Arm)
CLASS_FEATURES = (
    "avx2",
    "avx_vnni",
    "avx_ne_convert",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512dq",
    "avx512_bf16",
    "avx512_vnni",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "asimddp",
    "sve",
    "sve2",
    "bf16",
    "i8mm",
)
# oneDNN's ISA cap (``DNNL_MAX_CPU_ISA`` is its older name): value -> the class features it leaves
ISA_CAP_ENVS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
# ATen's own cap (its vectorized kernels, and the vector ISA inductor generates C++ for)
ATEN_CAP_ENV = "ATEN_CPU_CAPABILITY"
_AVX512_CORE = ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq")
_AVX512_FP16 = (
    *_AVX512_CORE,
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "avx_ne_convert",
)
_AMX = frozenset({*_AVX512_FP16, "amx_tile", "amx_bf16", "amx_int8"})
ISA_CAPS: dict[str, frozenset[str]] = {
    "SSE41": frozenset(),
    "AVX": frozenset(),
    "AVX2": frozenset({"avx2"}),
    "AVX2_VNNI": frozenset({"avx2", "avx_vnni"}),
    "AVX2_VNNI_2": frozenset({"avx2", "avx_vnni", "avx_ne_convert"}),
    "AVX512_CORE": frozenset(_AVX512_CORE),
    "AVX512_CORE_VNNI": frozenset({*_AVX512_CORE, "avx512_vnni"}),
    "AVX512_CORE_BF16": frozenset({*_AVX512_CORE, "avx512_vnni", "avx512_bf16"}),
    "AVX512_CORE_FP16": frozenset(_AVX512_FP16),
    "AVX10_1_512": frozenset(_AVX512_FP16),
    "AVX512_CORE_AMX": _AMX,
    "AVX10_1_512_AMX": _AMX,
    "AVX512_CORE_AMX_FP16": _AMX,
    "AVX10_1_512_AMX_FP16": _AMX,
}
_X86_CLASS_FEATURES = _AMX  # every x86 class feature a cap can take away
# the pre-class fingerprint's flags (baselines of schema version 1 and 2)
LEGACY_ISA_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
PLUGIN_DISTRIBUTION = "pytest-cxrperf"  # recorded beside the libraries, no part of the key
LIBRARIES = (
    "torch",
    "transformers",
    "openvino",
    "nncf",
    "intel-extension-for-pytorch",
    PLUGIN_DISTRIBUTION,
)
# display names of microarchitectures: (vendor, family, first model, last model) -> name
MICROARCHITECTURES = (
    ("amd", 23, 0x00, 0x2F, "Zen/Zen+"),
    ("amd", 23, 0x30, 0x7F, "Zen 2"),
    ("amd", 25, 0x00, 0x0F, "Zen 3"),
    ("amd", 25, 0x10, 0x1F, "Zen 4"),
    ("amd", 25, 0x20, 0x5F, "Zen 3"),
    ("amd", 25, 0x60, 0x7F, "Zen 4"),
    ("amd", 25, 0xA0, 0xAF, "Zen 4c"),
    ("amd", 26, 0x00, 0xFF, "Zen 5"),
    ("intel", 6, 0x3F, 0x3F, "Haswell"),
    ("intel", 6, 0x4F, 0x4F, "Broadwell"),
    ("intel", 6, 0x55, 0x55, "Skylake/Cascade Lake"),
    ("intel", 6, 0x6A, 0x6C, "Ice Lake"),
    ("intel", 6, 0x8F, 0x8F, "Sapphire Rapids"),
    ("intel", 6, 0xCF, 0xCF, "Emerald Rapids"),
    ("intel", 6, 0xAD, 0xAE, "Granite Rapids"),
)


@lru_cache(maxsize=4)
def _read_cpuinfo(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in info:
            info[key.strip()] = value.strip()
    return info


def _cpuinfo() -> dict[str, str]:
    return _read_cpuinfo(os.environ.get(CPUINFO_ENV) or "/proc/cpuinfo")


def cpu_model() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def isa_cap() -> str | None:
    """The ISA cap oneDNN runs under (``ONEDNN_MAX_CPU_ISA=AVX2``), or None: unset, ``ALL`` or
    ``DEFAULT``, or a value oneDNN does not know (it ignores those too)."""
    for name in ISA_CAP_ENVS:
        value = os.environ.get(name, "").strip().upper()
        if value:
            return value if value in ISA_CAPS else None
    return None


def aten_cap() -> str | None:
    """ATen's vector-ISA cap (``ATEN_CPU_CAPABILITY=avx2``), lower-cased, or None where unset."""
    value = os.environ.get(ATEN_CAP_ENV, "").strip().lower()
    return value or None


def active_caps() -> list[str]:
    """The caps set in this process's environment as ``NAME=value`` (the names as set, e.g.
    ``DNNL_MAX_CPU_ISA=AVX2``), for messages that tell the user what to unset."""
    return [
        f"{name}={os.environ[name].strip()}"
        for name in (*ISA_CAP_ENVS, ATEN_CAP_ENV)
        if os.environ.get(name, "").strip()
    ]


def cpu_flags() -> frozenset[str]:
    """Every flag the CPU reports (x86 ``flags``, Arm ``Features``), less the class features an
    ISA cap (:func:`isa_cap`) keeps oneDNN from using."""
    info = _cpuinfo()
    flags = frozenset((info.get("flags") or info.get("Features") or "").split())
    cap = isa_cap()
    if cap is None:
        return flags
    return flags - (_X86_CLASS_FEATURES - ISA_CAPS[cap])


def isa_flags() -> list[str]:
    """The class features this CPU has, in :data:`CLASS_FEATURES` order."""
    flags = cpu_flags()
    return [f for f in CLASS_FEATURES if f in flags]


def _vendor() -> str:
    info = _cpuinfo()
    vendor = info.get("vendor_id", "")
    if vendor == "AuthenticAMD":
        return "amd"
    if vendor == "GenuineIntel":
        return "intel"
    if vendor:
        return re.sub(r"[^a-z0-9]+", "", vendor.lower()) or "cpu"
    implementer = info.get("CPU implementer")
    if implementer:  # Arm: 0x41 Arm, 0xc0 Ampere, 0x61 Apple, ...
        return f"arm{implementer.lower().removeprefix('0x')}"
    return re.sub(r"[^a-z0-9]+", "", platform.machine().lower()) or "cpu"


def _number(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(text, 0)
    except ValueError:
        return None


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
    """The installed versions of the libraries a timing depends on (the one place they are read)."""
    found: dict[str, str] = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def keyed_libraries(libraries: Mapping[str, str]) -> dict[str, str]:
    """The library versions the environment key covers: all recorded but this plugin's own."""
    return {k: v for k, v in libraries.items() if k != PLUGIN_DISTRIBUTION}


def environment_of(libraries: Mapping[str, str], python: str | None = None) -> str:
    """``py3.11-torch2.13.0-<hash8>``: the hash covers every library but this plugin."""
    libraries = keyed_libraries(libraries)
    python = python or ".".join(platform.python_version_tuple()[:2])
    digest = hashlib.sha256(repr(sorted(libraries.items())).encode()).hexdigest()[:8]
    torch = libraries.get("torch", "none").split("+")[0]
    return f"py{python}-torch{torch}-{digest}"


@lru_cache(maxsize=1)
def environment_id() -> str:
    """The software a timing depends on, as a short id (:func:`environment_of` of this one)."""
    return environment_of(library_versions())


@dataclass(frozen=True)
class MachineClass:
    """The facts that move relative speed; see the module docstring."""

    vendor: str
    family: int | None
    model: int | None
    features: tuple[str, ...]
    cores: int
    threads: int
    environment: str
    arch: str = ""
    isa_cap: str = ""  # ONEDNN_MAX_CPU_ISA where set: the features above say what it left
    aten_cap: str = ""  # ATEN_CPU_CAPABILITY where set: part of the key (the features cannot say)

    @property
    def cpu_key(self) -> str:
        where = f"f{self.family}m{self.model}" if self.family is not None else self.arch or "cpu"
        features = "+".join(self.features) or "base"
        aten = f"-aten_{self.aten_cap}" if self.aten_cap else ""
        return f"{self.vendor}-{where}-{features}{aten}-{self.cores}c-t{self.threads}"

    @property
    def key(self) -> str:
        return f"{self.cpu_key}/{self.environment}"

    @property
    def microarchitecture(self) -> str:
        for vendor, family, low, high, name in MICROARCHITECTURES:
            if (self.vendor, self.family) == (vendor, family) and low <= (self.model or -1) <= high:
                return name
        return ""

    def caps(self) -> list[str]:
        """The class's ISA caps as ``NAME=value`` (oneDNN's by its current name, then ATen's)."""
        pairs = ((ISA_CAP_ENVS[0], self.isa_cap), (ATEN_CAP_ENV, self.aten_cap))
        return [f"{name}={value}" for name, value in pairs if value]

    def describe(self) -> str:
        """One line for headers: the key and what it means."""
        said = [self.microarchitecture] if self.microarchitecture else []
        said += [
            f"{'ISA' if cap.startswith(ISA_CAP_ENVS[0]) else 'ATen'} capped: {cap}"
            for cap in self.caps()
        ]
        return f"{self.key} ({'; '.join(said)})" if said else self.key

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "vendor": self.vendor,
            "family": self.family,
            "model": self.model,
            "microarchitecture": self.microarchitecture,
            "features": list(self.features),
            "cores": self.cores,
            "threads": self.threads,
            "environment": self.environment,
            "arch": self.arch,
            **({"isa_cap": self.isa_cap} if self.isa_cap else {}),
            **({"aten_cap": self.aten_cap} if self.aten_cap else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MachineClass:
        def number(value: Any) -> int | None:
            return int(value) if isinstance(value, int) and not isinstance(value, bool) else None

        return cls(
            vendor=str(data.get("vendor") or "cpu"),
            family=number(data.get("family")),
            model=number(data.get("model")),
            features=tuple(str(f) for f in data.get("features") or ()),
            cores=int(data.get("cores") or 0),
            threads=int(data.get("threads") or 0),
            environment=str(data.get("environment") or ""),
            arch=str(data.get("arch") or ""),
            isa_cap=str(data.get("isa_cap") or ""),
            aten_cap=str(data.get("aten_cap") or ""),
        )


def machine_class(threads: int) -> MachineClass:
    """This host's class at ``threads`` threads."""
    info = _cpuinfo()
    return MachineClass(
        vendor=_vendor(),
        family=_number(info.get("cpu family")),
        model=_number(info.get("model")) if "cpu family" in info else _number(info.get("CPU part")),
        features=tuple(isa_flags()),
        cores=cpu_count(),
        threads=threads,
        environment=environment_id(),
        arch=platform.machine(),
        isa_cap=isa_cap() or "",
        aten_cap=aten_cap() or "",
    )


def library_differences(this: Mapping[str, str], stored: Mapping[str, str]) -> list[str]:
    """The libraries of the environment key whose versions differ, as ``transformers 5.24.0 (this:
    5.25.0)`` (``absent`` where one side lacks it); this plugin's own version is no part of it."""
    this, stored = keyed_libraries(this), keyed_libraries(stored)
    return [
        f"{name} {stored.get(name, 'absent')} (this: {this.get(name, 'absent')})"
        for name in sorted(set(this) | set(stored))
        if this.get(name) != stored.get(name)
    ]


def class_differences(
    wanted: MachineClass,
    other: MachineClass,
    compared: tuple[str, ...] | None = None,
    libraries: tuple[Mapping[str, str], Mapping[str, str]] | None = None,
) -> list[str]:
    """What sets ``other`` apart from ``wanted``, in words: features ``wanted`` has and ``other``
    lacks (``avx512_bf16``), features only ``other`` has (``amx_int8 (stored only)``), CPU family
    and model, ISA caps, cores, threads, environment. ``compared``: the features ``other`` could
    know of (a pre-class file's); ``other``'s family and model count only where known.
    ``libraries``: (this environment's, ``other``'s) library versions, where known: an environment
    that differs then names the libraries that moved, so a release that changed the key is plain
    to see."""
    said: list[str] = []
    if other.vendor != wanted.vendor or (
        other.family is not None and (other.family, other.model) != (wanted.family, wanted.model)
    ):
        said.append(
            f"cpu {other.vendor} family {other.family} model {other.model} (this: {wanted.vendor} "
            f"family {wanted.family} model {wanted.model})"
        )
    known = set(compared if compared is not None else CLASS_FEATURES)
    mine, theirs = set(wanted.features) & known, set(other.features) & known
    said += sorted(mine - theirs, key=CLASS_FEATURES.index)
    said += [f"{f} (stored only)" for f in sorted(theirs - mine, key=CLASS_FEATURES.index)]
    if (other.isa_cap, other.aten_cap) != (wanted.isa_cap, wanted.aten_cap):
        said.append(f"ISA caps {_caps(other)} (this: {_caps(wanted)})")
    if other.cores != wanted.cores:
        said.append(f"{other.cores} cores (this: {wanted.cores})")
    if other.threads != wanted.threads:
        said.append(f"{other.threads} threads (this: {wanted.threads})")
    if other.environment != wanted.environment:
        moved = library_differences(*libraries) if libraries and all(libraries) else []
        pythons = [e.split("-")[0] for e in (other.environment, wanted.environment)]
        if all(p.startswith("py") for p in pythons) and pythons[0] != pythons[1]:
            moved.insert(0, f"python {pythons[0][2:]} (this: {pythons[1][2:]})")
        said.append(
            f"environment {other.environment or 'unrecorded'} (this: {wanted.environment}"
            + "".join(f"; {m}" for m in moved)
            + ")"
        )
    return said


def _caps(cls: MachineClass) -> str:
    return ", ".join(cls.caps()) or "none"


def class_distance(wanted: MachineClass, other: MachineClass) -> tuple[int, ...]:
    """Sort key for the nearest stored class: the CPU's features first, then the rest."""
    features = len(set(wanted.features) ^ set(other.features))
    cpu = (other.vendor, other.family, other.model) != (wanted.vendor, wanted.family, wanted.model)
    return (
        int(other.threads != wanted.threads),
        features,
        int(cpu),
        int(other.cores != wanted.cores),
        int(other.environment != wanted.environment),
    )


def legacy_fingerprint_facts(threads: int) -> dict[str, object]:
    """The facts behind the pre-class fingerprint (baseline schema versions 1 and 2)."""
    flags = cpu_flags()
    return {
        "cpu": cpu_model(),
        "cores": cpu_count(),
        "isa": [f for f in LEGACY_ISA_FLAGS if f in flags],
        "memory_gib": memory_gib(),
        "threads": threads,
        "arch": platform.machine(),
    }


def legacy_fingerprint(threads: int) -> str:
    """The pre-class id ``<cpu-slug>-<cores>c-t<threads>-<hash8>``: how baselines of schema
    versions 1 and 2 named this host, so that they can be recognised and migrated."""
    facts = legacy_fingerprint_facts(threads)
    digest = hashlib.sha256(repr(sorted(facts.items())).encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9]+", "-", str(facts["cpu"]).lower()).strip("-")[:32] or "cpu"
    return f"{slug}-{facts['cores']}c-t{threads}-{digest}"


def machine_info(threads: int) -> dict[str, object]:
    """Everything about this machine a report shows: the class (its key as ``fingerprint``, the
    name reports and merges key runs by), the CPU, memory and library versions."""
    cls = machine_class(threads)
    return {
        "cpu": cpu_model(),
        "cores": cls.cores,
        "isa": list(cls.features),
        "memory_gib": memory_gib(),
        "threads": threads,
        "arch": platform.machine(),
        "fingerprint": cls.key,
        "machine_class": cls.to_dict(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": library_versions(),
    }
