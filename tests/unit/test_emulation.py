"""``cxrperf emulate``: the emulated CPU's class, the environment and command it builds, and
what it refuses (pure parts, no QEMU needed); one end-to-end run where QEMU is installed."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_cxrperf import emulation, machine
from pytest_cxrperf.cli import main as cxrperf_main
from pytest_cxrperf.emulation import ZEN3, EmulationError

RECORDED_ZEN3 = Path(__file__).resolve().parents[1] / "data" / "cpuinfo" / "avx2-zen3.txt"

pytestmark = pytest.mark.usefixtures("no_isa_cap")


def class_of(cpuinfo: Path, monkeypatch: pytest.MonkeyPatch) -> machine.MachineClass:
    monkeypatch.setenv(machine.CPUINFO_ENV, str(cpuinfo))
    return machine.machine_class(2)


def test_the_emulated_zen3_is_the_class_of_a_real_zen3_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulated = tmp_path / "cpuinfo"
    emulated.write_text(ZEN3.cpuinfo(), encoding="utf-8")
    real = class_of(RECORDED_ZEN3, monkeypatch)
    assert class_of(emulated, monkeypatch).cpu_key == real.cpu_key
    assert real.features == ("avx2",)
    assert "emulated: qemu-x86_64 -cpu EPYC-Milan" in ZEN3.cpuinfo()


def test_the_environment_names_the_cpu_the_compiler_target_and_a_cache_of_its_own(
    tmp_path: Path,
) -> None:
    base = {
        "PATH": "/usr/bin",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "DNNL_MAX_CPU_ISA": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
        "TORCHINDUCTOR_CACHE_DIR": "/shared/cache",
    }
    wrapper = emulation.write_compiler("/usr/bin/g++", ZEN3, tmp_path)
    assert wrapper is not None
    env = emulation.emulated_env(base, ZEN3, tmp_path, wrapper)
    assert env["PATH"] == "/usr/bin"
    assert env[machine.CPUINFO_ENV] == str(tmp_path / "cpuinfo")
    assert env["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")
    # never the host's -march=native: the compiler runs natively and would target the host
    assert env["CXX"] == str(wrapper) and wrapper.name == "g++"  # inductor reads gcc by name
    assert wrapper.read_text().splitlines()[-1] == 'exec /usr/bin/g++ "$@" -march=x86-64-v3'
    assert emulation.emulated_env(base, ZEN3, tmp_path, None).get("CXX") is None
    # the emulated CPU is the cap; a cap on top would make it another class
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"):
        assert name not in env
    assert base["ONEDNN_MAX_CPU_ISA"] == "AVX2"  # the caller's mapping is left alone


@pytest.mark.skipif(shutil.which("g++") is None, reason="no g++ on this host")
def test_the_compiler_wrapper_overrides_march_native(tmp_path: Path) -> None:
    """The host's own -march=native comes first on inductor's command line; the wrapper's wins:
    no AVX-512 macro is defined even on an AVX-512 host."""
    wrapper = emulation.write_compiler(shutil.which("g++"), ZEN3, tmp_path)
    assert wrapper is not None
    macros = subprocess.run(
        [str(wrapper), "-march=native", "-dM", "-E", "-x", "c++", "/dev/null"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "__AVX2__" in macros and "__AVX512F__" not in macros


def test_the_command_selects_equivalence_and_a_throwaway_store_and_the_callers_args_win(
    tmp_path: Path,
) -> None:
    command = emulation.emulated_command(
        "/usr/bin/qemu-x86_64", ZEN3, "/venv/bin/python", ["-m", "not slow", "-k", "x"], tmp_path
    )
    assert command[:3] == ["/usr/bin/qemu-x86_64", "-cpu", "EPYC-Milan"]
    assert command[3:6] == ["/venv/bin/python", "-m", "pytest"]
    assert "no:xdist" in command  # its workers would run natively
    assert f"--cxr-baseline-dir={tmp_path / 'baselines'}" in command
    first_m = command.index("-m", 5)
    assert command[first_m + 1] == "cxr_equivalence"
    assert command[-4:] == ["-m", "not slow", "-k", "x"]  # pytest keeps the last -m


@pytest.mark.parametrize(
    ("arg", "why"),
    [
        ("--cxr-update-baselines", "baseline store"),
        ("--cxr-baseline-dir=baselines", "baseline store"),
        ("--cxr-save-missing=out", "baseline store"),
        ("-n", "natively"),
        ("-n2", "natively"),
        ("--numprocesses=2", "natively"),
        ("--dist=load", "natively"),
    ],
)
def test_options_that_touch_the_store_or_run_natively_are_refused_before_anything_runs(
    arg: str, why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(EmulationError, match=f"refused under emulation: .*{why}"):
        emulation.prepare(ZEN3, ["--cxr-backend=eager", arg], tmp_path / "work")
    assert not (tmp_path / "work").exists()
    assert cxrperf_main(["emulate", "--", arg, "2"]) == 4
    assert arg.split("=")[0][:2] in capsys.readouterr().err


def test_other_options_pass(tmp_path: Path) -> None:
    assert emulation.refused_option(["-m", "x", "--cxr-backend=eager", "--no-header"]) is None


def test_without_qemu_it_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no qemu-x86_64 here
    assert cxrperf_main(["emulate", "--", "--cxr-backend=eager"]) == 4
    err = capsys.readouterr().err
    assert "qemu-x86_64 not found" in err and "apt-get install qemu-user" in err


def test_qemus_feature_warnings_are_dropped_and_the_rest_passes_through(
    capfd: pytest.CaptureFixture[str],
) -> None:
    script = (
        "import sys;"
        f"sys.stderr.write({emulation.QEMU_FEATURE_WARNING!r} + ': CPUID.07H:EBX.rdseed\\n');"
        "sys.stderr.write('a real error\\n'); sys.exit(3)"
    )
    assert emulation.run_emulated([sys.executable, "-c", script], {}) == 3
    err = capfd.readouterr().err
    assert "a real error" in err and "rdseed" not in err


@pytest.mark.skipif(
    shutil.which(emulation.QEMU) is None, reason=f"{emulation.QEMU} not installed (qemu-user)"
)
def test_under_emulation_every_library_sees_an_avx2_cpu_and_the_plugin_its_class(
    tmp_path: Path,
) -> None:
    """End to end through QEMU: the plugin's class, torch's and (where it is installed: not in
    the IPEX environment) OpenVINO's own view of the CPU."""
    has_openvino = importlib.util.find_spec("openvino") is not None
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        "import torch\n"
        "from pytest_cxrperf import machine\n"
        "def test_cpu():\n"
        "    print('CLASS', machine.machine_class(1).cpu_key)\n"
        "    print('TORCH', torch.backends.cpu.get_cpu_capability())\n"
        + (
            "    import openvino as ov\n"
            "    print('OV', ov.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES'))\n"
            if has_openvino
            else ""
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest_cxrperf.cli", "emulate", "--"),
            *("--cxr-backend=eager", "-m", "", "-k", "test_cpu", "-s", "-q", str(probe)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CLASS amd-f25m1-avx2-" in result.stdout
    assert "TORCH AVX2" in result.stdout  # ATen asked CPUID: no AVX-512 under emulation
    if has_openvino:
        assert "BF16" not in result.stdout.split("OV", 1)[1].splitlines()[0]
    assert "TCG doesn't support" not in result.stderr
