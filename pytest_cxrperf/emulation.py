"""Run pytest as on a CPU of another class, emulated by QEMU's user mode (``cxrperf emulate``).

Why: baselines and development often sit on AVX-512 hosts while many CI runners and hospital
servers have AVX2 only, and there torch, inductor, IPEX and OpenVINO take other code paths (int8
without VNNI, bf16 emulated or refused by IPEX, OpenVINO's bf16 hint ignored). An ISA cap
(``ONEDNN_MAX_CPU_ISA=AVX2``) reaches torch and IPEX only: OpenVINO ignores it (README, "Machine
classes"). Under ``qemu-x86_64 -cpu EPYC-Milan`` every library asks CPUID and meets a Zen 3
without AVX-512, so every backend runs the kernels it would run there.

Only this pytest process is emulated: a process it starts (a compiler, a test's subprocess)
runs natively, which is why the compiler is wrapped and xdist is refused.

What it is for: what a backend *says* on that class (equivalence, which backends run, the
class's choices and notes). Not for speed: emulated time is no CPU's time, so only the
equivalence tests are selected by default and the baselines are a throwaway folder, never the
store (options that would read or write the store are refused).

Three things make the run coherent (:func:`prepare` sets them up):

* ``CXRPERF_CPUINFO`` names a ``/proc/cpuinfo`` of the emulated CPU (QEMU's user mode passes the
  host's file through), so the machine class and the class's choices are the emulated CPU's;
* ``CXX`` names a wrapper of the host's C++ compiler that targets the emulated CPU: inductor
  compiles its kernels with that compiler, which runs natively, and its ``-march=native`` emitted
  the host's AVX-512 (an illegal instruction under emulation in compile-int8's first prefill, with
  torch 2.13 and 2.8 alike; 2.8 has no setting for the target, so the wrapper appends one: the last
  ``-march`` wins);
* ``TORCHINDUCTOR_CACHE_DIR`` in the run's own folder, so no kernel built for another ISA is used.

Pure apart from :func:`run_emulated`; ``tests/unit/test_emulation.py``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .machine import ATEN_CAP_ENV, CPUINFO_ENV, ISA_CAP_ENVS

QEMU = "qemu-x86_64"
# QEMU warns once per CPUID feature of the model its emulator lacks (none is a vector feature)
QEMU_FEATURE_WARNING = f"{QEMU}: warning: TCG doesn't support requested feature"
INSTALL_HINT = "install QEMU's user mode (Debian/Ubuntu: apt-get install qemu-user)"
# options refused, and why: emulated time must never reach the baseline store, and a new
# process (an xdist worker) is run natively by QEMU's user mode, on the host's CPU
_STORE = "emulated time is no CPU's time, so the baseline store is neither read nor written"
_NATIVE = "xdist's workers are new processes, which QEMU's user mode runs natively (the host's CPU)"
REFUSED_OPTIONS = {
    "--cxr-update-baselines": _STORE,
    "--cxr-baseline-dir": _STORE,
    "--cxr-save-missing": _STORE,
    "-n": _NATIVE,
    "--numprocesses": _NATIVE,
    "--dist": _NATIVE,
}
DEFAULT_SELECTION = "cxr_equivalence"


@dataclass(frozen=True)
class EmulatedCpu:
    """A CPU to emulate: QEMU's model, the compiler target inductor builds for, and the
    ``/proc/cpuinfo`` the plugin reads (vendor, family, model, model name, flags)."""

    name: str
    qemu_model: str
    march: str
    vendor_id: str
    family: int
    model: int
    model_name: str
    flags: str

    def cpuinfo(self) -> str:
        return (
            "processor\t: 0\n"
            f"vendor_id\t: {self.vendor_id}\n"
            f"cpu family\t: {self.family}\n"
            f"model\t\t: {self.model}\n"
            f"model name\t: {self.model_name} (emulated: {QEMU} -cpu {self.qemu_model})\n"
            f"flags\t\t: {self.flags}\n"
        )


# An AMD EPYC 7763 (Zen 3), the CPU most hosted Linux CI runners have: AVX2 and FMA, no
# AVX-512, no VNNI, no AMX. Flags as such a runner's /proc/cpuinfo lists them.
ZEN3 = EmulatedCpu(
    name="zen3",
    qemu_model="EPYC-Milan",
    march="x86-64-v3",  # AVX2, FMA, BMI2: every AVX2-class CPU has them (and QEMU emulates)
    vendor_id="AuthenticAMD",
    family=25,
    model=1,
    model_name="AMD EPYC 7763 64-Core Processor",
    flags=(
        "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr "
        "sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl "
        "tsc_reliable nonstop_tsc cpuid extd_apicid aperfmperf pni pclmulqdq ssse3 fma cx16 pcid "
        "sse4_1 sse4_2 movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm cmp_legacy svm "
        "cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw topoext invpcid_single vmmcall "
        "fsgsbase bmi1 avx2 smep bmi2 erms invpcid rdseed adx smap clflushopt clwb sha_ni "
        "xsaveopt xsavec xgetbv1 xsaves clzero xsaveerptr rdpru arat npt nrip_save umip vaes "
        "vpclmulqdq rdpid fsrm"
    ),
)
EMULATED_CPUS = {cpu.name: cpu for cpu in (ZEN3,)}


class EmulationError(Exception):
    """Why an emulated run cannot start (a usage error: nothing has run)."""


def refused_option(pytest_args: Sequence[str]) -> str | None:
    """The first refused option (:data:`REFUSED_OPTIONS`; ``-n2`` counts as ``-n``), or None."""
    for arg in pytest_args:
        name = arg.split("=", 1)[0]
        if name.startswith("-n") and not name.startswith("--"):
            name = "-n"
        if name in REFUSED_OPTIONS:
            return name
    return None


def emulated_env(
    base: Mapping[str, str], cpu: EmulatedCpu, work: Path, compiler: Path | None
) -> dict[str, str]:
    """``base`` with the emulated CPU's cpuinfo, the compiler wrapper (:func:`write_compiler`,
    where there is one) and an inductor cache of the run's own; ISA caps removed (the emulated CPU
    is the cap: a cap on top would be another class)."""
    env = {k: v for k, v in base.items() if k not in (*ISA_CAP_ENVS, ATEN_CAP_ENV)}
    env[CPUINFO_ENV] = str(work / "cpuinfo")
    env["TORCHINDUCTOR_CACHE_DIR"] = str(work / "inductor")
    if compiler is not None:
        env["CXX"] = str(compiler)
    return env


def write_compiler(real: str | None, cpu: EmulatedCpu, work: Path) -> Path | None:
    """A ``g++`` in ``work`` that runs ``real`` with the emulated CPU's ``-march`` last (the name
    must say g++: inductor picks gcc's flags by the compiler's name), or None without a compiler
    (inductor's backends then fail as they would natively)."""
    if real is None:
        return None
    wrapper = work / "compiler" / "g++"
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    wrapper.write_text(
        "#!/bin/sh\n"
        "# cxrperf emulate: the host's compiler, targeting the emulated CPU (last -march wins)\n"
        f'exec {shlex.quote(real)} "$@" -march={cpu.march}\n',
        encoding="utf-8",
    )
    wrapper.chmod(0o755)
    return wrapper


def emulated_command(
    qemu: str, cpu: EmulatedCpu, python: str, pytest_args: Sequence[str], work: Path
) -> list[str]:
    """The command line: pytest in ``python`` under QEMU, the equivalence tests only unless the
    caller selects others (a later ``-m`` wins), the baselines in ``work``."""
    return [
        qemu,
        "-cpu",
        cpu.qemu_model,
        python,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",  # its workers would run natively
        "-m",
        DEFAULT_SELECTION,
        f"--cxr-baseline-dir={work / 'baselines'}",
        *pytest_args,
    ]


def prepare(
    cpu: EmulatedCpu, pytest_args: Sequence[str], work: Path, *, python: str | None = None
) -> tuple[list[str], dict[str, str]]:
    """Check the request, write the emulated cpuinfo into ``work``, and return the command and
    its environment. Raises :class:`EmulationError` before anything runs."""
    refused = refused_option(pytest_args)
    if refused:
        raise EmulationError(f"{refused} is refused under emulation: {REFUSED_OPTIONS[refused]}")
    qemu = shutil.which(QEMU)
    if qemu is None:
        raise EmulationError(f"{QEMU} not found on PATH: {INSTALL_HINT}")
    work.mkdir(parents=True, exist_ok=True)
    (work / "cpuinfo").write_text(cpu.cpuinfo(), encoding="utf-8")
    real = os.environ.get("CXX") or shutil.which("g++")
    compiler = write_compiler(shutil.which(real) if real else None, cpu, work)
    command = emulated_command(qemu, cpu, python or sys.executable, pytest_args, work)
    return command, emulated_env(os.environ, cpu, work, compiler)


def run_emulated(command: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``command``, passing its output through without QEMU's per-feature warnings; its
    exit status."""
    with subprocess.Popen(command, env=dict(env), stderr=subprocess.PIPE, text=True) as process:
        assert process.stderr is not None
        for line in process.stderr:
            if not line.startswith(QEMU_FEATURE_WARNING):
                sys.stderr.write(line)
                sys.stderr.flush()
    return process.returncode
