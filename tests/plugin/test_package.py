"""The plugin in a team's own repository: the built-in suite, lazy activation, pytest-xdist."""

import json
import re
import shutil
from pathlib import Path

import pytest

from .conftest import FAST

EXAMPLE = Path(__file__).parents[2] / "examples" / "team_checks" / "test_reports_we_require.py"

NO_TORCH = """
import sys


def test_plain():
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
    assert not loaded, loaded[:5]
"""


FORGETFUL = '''

class ForgetfulRunner(TorchRunner):
    """Writes the report without its pneumothorax sentence."""

    def generate(self, inputs, max_new_tokens, **kwargs):
        result = super().generate(inputs, max_new_tokens, **kwargs)
        kept = [s for s in result.text.split(". ") if "pneumothorax" not in s.lower()]
        return replace(result, text=". ".join(kept))


@register_backend
class ForgetfulBackend(Backend):
    name = "forgetful"
    precision = "fp32"

    def prepare(self, reference, example):
        return ForgetfulRunner(reference.model, reference.processor)
'''


def outcomes(result):
    return result.parseoutcomes()


def test_the_suite_is_collected_in_an_empty_directory(suite):
    result = suite.runpytest_subprocess("--cxr-backend=all", "--collect-only", "-q")
    assert result.ret == 0, result.stdout.str()
    out = result.stdout.str()
    for backend in ("eager", "eager-bf16", "openvino", "openvino-int8", "wrong"):
        assert f"pytest_cxrperf/suite/test_latency.py::test_latency[{backend}]" in out
    suite_file = "pytest_cxrperf/suite/test_equivalence.py"
    assert f"{suite_file}::test_equivalence[eager-study-001-token_ids]" in out


def test_without_xdist_the_latency_tests_carry_no_unknown_mark(suite):
    """The xdist group is xdist's mark: where xdist is absent (the IPEX environment) the suite
    must not make pytest warn about an unknown mark."""
    result = suite.runpytest_subprocess(
        "-p", "no:xdist", "-W", "error::pytest.PytestUnknownMarkWarning",
        "--cxr-backend=eager", "--collect-only", "-q",
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()
    assert "test_latency.py::test_latency[eager]" in result.stdout.str()
    assert "xdist_group" not in result.stdout.str()


def test_the_suite_runs_in_an_empty_directory(suite):
    result = suite.runpytest_subprocess(*FAST, "--cxr-backend=eager,openvino-f32")
    assert result.ret == 0, result.stdout.str()
    counts = outcomes(result)
    # per backend: 1 latency + 4 studies x (4 checks + ground truth)
    assert counts["passed"] == 2 * (1 + 4 * 5), counts
    result.stdout.fnmatch_lines(["*cxrperf summary*", "eager *", "openvino-f32 *"])


def test_without_a_cxr_option_nothing_is_collected_and_torch_is_not_imported(pytester):
    pytester.makepyfile(test_plain=NO_TORCH)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert outcomes(result) == {"passed": 1}, result.stdout.str()
    assert "cxrperf:" not in result.stdout.str()  # no header
    assert "cxrperf summary" not in result.stdout.str()


def test_the_plugin_changes_no_thread_count_when_unused(pytester):
    pytester.makepyfile(
        test_threads="""
        import pathlib


        def test_threads(request):
            import torch

            name = request.config.getoption("--basetemp") + ".threads"
            pathlib.Path(name).write_text(str(torch.get_num_threads()))
        """
    )
    seen = []
    for plugin in ([], ["-p", "no:cxrperf"]):
        base = pytester.path / f"run{len(seen)}"
        result = pytester.runpytest_subprocess(*plugin, f"--basetemp={base}")
        assert outcomes(result) == {"passed": 1}, result.stdout.str()
        seen.append(int(pytester.path.joinpath(f"run{len(seen)}.threads").read_text()))
    assert seen[0] == seen[1]


def test_a_cxr_fixture_activates_the_plugin_and_the_suite_stays_out(suite):
    shutil.copy(EXAMPLE, suite.path / EXAMPLE.name)
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "--cxr-max-new-tokens=40")
    # the ini's backend (none: eager fp32) x 4 studies x 2 checks; no built-in test
    assert outcomes(result) == {"passed": 8}, result.stdout.str()
    assert "pytest_cxrperf/suite" not in result.stdout.str()


def test_the_team_example_runs_beside_the_suite_and_catches_a_bad_backend(suite):
    shutil.copy(EXAMPLE, suite.path / EXAMPLE.name)
    good = suite.runpytest_subprocess(*FAST, "--cxr-backend=eager", "-m", "not cxr_latency")
    assert good.ret == 0, good.stdout.str()
    assert outcomes(good)["passed"] == 4 * 5 + 4 * 2
    conftest = suite.path / "conftest.py"
    conftest.write_text(conftest.read_text() + FORGETFUL)
    bad = suite.runpytest_subprocess(*FAST, "--cxr-backend=forgetful", "-k", "pneumothorax")
    assert bad.ret == pytest.ExitCode.TESTS_FAILED
    assert outcomes(bad)["failed"] == 4
    bad.stdout.fnmatch_lines(["*forgetful on study-001 does not address pneumothorax*"])


def test_xdist_times_on_one_worker_and_the_controller_reports_everything(suite):
    report = suite.path / "results.json"
    result = suite.runpytest_subprocess(
        *FAST, "-n", "2", "-v", "--cxr-backend=eager,wrong", f"--cxr-json={report}"
    )
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out  # "wrong" says something else
    result.stdout.fnmatch_lines(
        ["*--dist=load -> loadgroup*", "*cxrperf summary*", "equivalence FAILED: wrong: *"]
    )
    workers = set(re.findall(r"\[(gw\d)\][^\n]*test_(?:latency|memory)\[", out))
    assert len(workers) == 1, out  # every latency test on one worker
    assert len(set(re.findall(r"\[(gw\d)\]", out))) == 2  # the rest spread over both
    data = json.loads(report.read_text())
    assert set(data["backends"]) == {"eager", "wrong"}
    for label, entry in data["backends"].items():
        assert entry["rounds"] >= 3 and len(entry["stages"]) == entry["rounds"], label
        assert len(entry["equivalence"]) == 4, label  # every study, from whichever worker
    assert data["backends"]["wrong"]["equivalence_ok"] is False
    assert data["latency_campaign"]["rounds"] >= 3


def test_xdist_each_would_time_on_every_worker_and_is_refused(suite):
    result = suite.runpytest_subprocess(*FAST, "-n", "2", "--dist", "each", "--cxr-backend=eager")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dist=each would run the latency campaign on every worker*"])
