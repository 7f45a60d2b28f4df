"""The report writers (Markdown, HTML, BMF, terminal) and `cxrperf report merge`, on hand-built
RunResults: no model, no pytest run."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_cxrperf import cli
from pytest_cxrperf.atomic import write_text_atomic
from pytest_cxrperf.backends.timings import StageTimings
from pytest_cxrperf.gate.decision import MISSING, OK, REGRESSED, Comparison, Verdict
from pytest_cxrperf.report import bmf, html, json_report, markdown, model
from pytest_cxrperf.report.merge import MergedReport
from pytest_cxrperf.report.terminal import summary_lines
from pytest_cxrperf.results import BackendResult, CampaignSummary, MemoryFigures, RunResults

ROOT = Path(__file__).resolve().parents[2]
STUDY_PNG = ROOT / "pytest_cxrperf" / "data" / "studies" / "study-001-frontal.png"
EFFUSION = {"label": "Pleural Effusion", "status": "present", "laterality": "left"}
NO_PNEUMO = {"label": "Pneumothorax", "status": "absent", "laterality": "none"}
CARDIO = {"label": "Cardiomegaly", "status": "present", "laterality": "none"}


def comparison(ratio, status, interval=(0.97, 1.03)):
    return Comparison(
        "relative", "eager", 0.5, 0.5 * ratio, ratio, interval, 30, 30, (3, 3), status
    )


def findings(found, expected, differences=()):
    return {
        "ok": not differences,
        "message": "; ".join(differences) or "same findings",
        "expected": expected,
        "found": found,
        "differences": list(differences),
    }


def backend(label, *, samples=(0.5, 0.52, 0.51), gate=None, memory=None, memory_gate=None):
    result = BackendResult(
        label=label,
        precision="fp32" if label == "eager" else "bf16",
        samples_s=list(samples),
        stages=[StageTimings(0.01, 0.02, (0.003, 0.004)) for _ in samples],
        control_samples_s=[0.8, 0.82, 0.81] if samples else [],
        prepare_seconds=1.5,
        gate=gate,
        control="probe" if label == "eager" else "eager",
        memory=memory,
        memory_gate=memory_gate,
    )
    result.equivalence["study-001"] = {
        "token_ids": {"ok": True, "message": "identical"},
        "clinical_findings": findings([EFFUSION, NO_PNEUMO], [EFFUSION, NO_PNEUMO]),
    }
    result.outputs["study-001"] = "Small left effusion. No pneumothorax."
    return result


def run(fingerprint="cpu-a-4c-t1-aaaa", failing=True):
    eager = backend("eager", gate=Verdict("eager", OK, False, relative=comparison(1.0, OK)))
    results = RunResults(
        settings={"model": "toy", "threads": 1, "max_new_tokens": 40, "warmup": 0},
        machine={"fingerprint": fingerprint, "cpu": "Test CPU", "cores": 4},
        campaign=CampaignSummary(30, 4.5, "decided", 1, 10, 30, 3),
        unavailable={"ipex": "needs torch 2.8"},
        notices=["IPEX is archived"],
    )
    results.backends["eager"] = eager
    if failing:
        slow = comparison(1.3, REGRESSED, (1.2, 1.4))
        results.backends["compile"] = backend(
            "compile",
            gate=Verdict("compile", REGRESSED, True, 0.1, 0.01, "b/compile.json", None, slow),
            memory=MemoryFigures(120.0, 8.5, 900.0, 130.0, 180.0, ("eager",)),
        )
        wrong = backend(
            "openvino",
            memory=MemoryFigures(300.0, 42.25, 1000.0, None, 150.0),
            memory_gate=Verdict("openvino", MISSING, False),
        )
        wrong.equivalence["study-001"]["clinical_findings"] = findings(
            [CARDIO, NO_PNEUMO], [EFFUSION, NO_PNEUMO], ["Pleural Effusion: missing", "extra"]
        )
        wrong.outputs["study-001"] = "Cardiomegaly. <script>alert(1)</script> a | b"
        results.backends["openvino"] = wrong
    results.studies["study-001"] = {
        "images": {"frontal": str(STUDY_PNG), "lateral": "/nowhere/lateral.png"},
        "indication": "Cough & fever",
    }
    return results


# ---- Markdown ------------------------------------------------------------------------------
def test_markdown_puts_the_headline_first_then_the_table_then_folded_details():
    text = markdown.render(run())
    lines = text.splitlines()
    assert lines[0].startswith("## :x: cxrperf: FAILED - 2 of 3 backend(s)")
    head = text[: text.index("| backend |")]
    assert "compile: latency REGRESSED +30% (ratio 1.300, interval [1.200, 1.400]" in head
    assert "openvino: equivalence FAILED: 1 check(s) on 1 of 1 studies (clinical_findings" in head
    assert "ipex: not run (needs torch 2.8)" in head
    table = next(line for line in lines if line.startswith("| compile |"))
    assert "| 8.5 | 900.0 | REGRESSED +30% | - |" in table  # memory shown, no memory verdict
    assert "| eager | :white_check_mark: ok | fp32 |" in text
    assert "| - | - | ok +0% | - |" in text  # eager: no memory figures
    assert text.index("<summary>:x: compile") < text.index("<summary>:white_check_mark: eager")
    assert text.count("<details>") == 4  # three backends and the notes
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>" not in text


def test_markdown_cells_cannot_break_the_table():
    assert markdown.cell("a|b\n<c>") == "a&#124;b &lt;c&gt;"


def test_markdown_of_a_passing_run():
    text = markdown.render(run(failing=False))
    assert text.startswith("## :white_check_mark: cxrperf: passed - 1 backend(s)")
    assert "**Failed**" not in text


def test_the_step_summary_drops_details_first_and_stays_under_its_limit(tmp_path):
    runs = [("", run())]
    full = markdown.render_runs(runs)
    short = markdown.fit(runs, len(full.encode()) - 1)
    assert markdown.TRUNCATED in short and "<details>" not in short
    assert short.splitlines()[0] == full.splitlines()[0]  # the headline survives
    tiny = markdown.fit(runs, 300)
    assert len(tiny.encode()) <= 300 and "Cut at GitHub's step summary limit" in tiny

    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    assert markdown.append_step_summary(runs, {"GITHUB_STEP_SUMMARY": str(summary)}) == summary
    text = summary.read_text()
    assert text.startswith("# earlier step\n## :x: cxrperf") and "<details>" in text

    summary.write_text("x" * (markdown.STEP_SUMMARY_LIMIT - len(short.encode()) - 10))
    markdown.append_step_summary(runs, {"GITHUB_STEP_SUMMARY": str(summary)})
    assert summary.stat().st_size <= markdown.STEP_SUMMARY_LIMIT
    assert markdown.TRUNCATED in summary.read_text()
    assert markdown.append_step_summary(runs, {}) is None


# ---- HTML ----------------------------------------------------------------------------------
def test_html_is_self_contained_escaped_and_shows_the_evidence():
    page = html.render(run())
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", page)  # nothing fetched
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Cough &amp; fever" in page
    assert page.count("<svg") >= 5  # speedup, stages, rounds of 3 backends, ratio of compile
    assert "ratio 1.300 [1.200, 1.400]" in page  # the verdict's interval, drawn
    assert "threshold +10%" in page
    assert "src='data:image/png;base64," in page  # the study image, embedded
    assert "lateral image not available: /nowhere/lateral.png" in page
    assert "<li class='diff'>Cardiomegaly: present</li>" in page  # eager does not assert it
    assert "<li class='missing'>Pleural Effusion: present (left)</li>" in page  # openvino misses it
    assert "<td>42.2</td>" in page  # memory figures (42.25 MiB)
    assert "no baseline" in page  # the memory verdict


def test_html_without_memory_or_studies_shows_dashes():
    results = run(failing=False)
    results.studies.clear()
    page = html.render(results)
    assert "<td>eager</td><td>-</td><td>-</td><td>-</td><td>-</td><td>-</td><td>-</td>" in page


@pytest.mark.skipif(
    not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")),
    reason="no Chromium here: apt-get install chromium to render the HTML report headless",
)
def test_html_renders_in_headless_chromium_without_console_errors(tmp_path):
    report, shot = tmp_path / "report.html", tmp_path / "report.png"
    html.write_html(report, [("cpu-a", run()), ("cpu-b", run("cpu-b-8c-t1-bbbb", False))])
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_html.py"), str(report),
         "--screenshot", str(shot)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert shot.stat().st_size > 10_000


# ---- BMF -----------------------------------------------------------------------------------
def test_bmf_has_latency_in_ns_stages_and_memory_when_present():
    data = bmf.build(run())
    json.dumps(data)  # plain JSON
    compile_ = data["cxrperf/toy/compile"]
    assert compile_["latency"] == {
        "value": pytest.approx(0.51e9),
        "lower_value": pytest.approx(0.5e9),
        "upper_value": pytest.approx(0.52e9),
    }
    assert compile_["speedup-vs-eager"]["value"] == pytest.approx(0.81 / 0.51)
    assert compile_["memory-generate-peak"] == {"value": 8.5}
    assert data["cxrperf/toy/compile/prefill"]["latency"]["value"] == pytest.approx(0.02e9)
    assert data["cxrperf/toy/compile/decode-per-token"]["latency"]["value"] == pytest.approx(3.5e6)
    assert "memory-available-drop" not in data["cxrperf/toy/openvino"]  # None: left out
    assert not any(k.startswith("memory") for k in data["cxrperf/toy/eager"])
    for measures in data.values():  # the BMF schema: every measure has a numeric value
        for metric in measures.values():
            assert set(metric) <= {"value", "lower_value", "upper_value"}
            assert all(isinstance(v, float) for v in metric.values())


# ---- terminal ------------------------------------------------------------------------------
def test_terminal_shows_the_table_first_and_detail_only_for_failures():
    lines = summary_lines(run())
    assert lines[0].startswith("backend ") and "gen peak MiB" in lines[0]
    text = "\n".join(lines)
    assert "latency gate FAILED: compile: latency regression" in text
    assert "equivalence FAILED: openvino: study-001: clinical_findings" in text
    assert "eager: latency unchanged" not in text  # a plain pass says nothing
    assert "passed: eager (details with -v)" in text
    assert "memory gate: openvino" not in text  # no baseline: one line for all
    assert "no latency baseline" not in text

    verbose = "\n".join(summary_lines(run(), verbose=1))
    assert "latency gate: eager: latency unchanged" in verbose
    assert "findings: eager: 1/1 studies agree with eager fp32" in verbose
    assert "  clinical_findings: Pleural Effusion: missing; extra" in verbose


def test_terminal_leaves_out_memory_columns_when_nothing_was_sampled():
    lines = summary_lines(run(failing=False))
    assert "gen peak MiB" not in lines[0] and "memory gate" not in lines[0]
    assert not any(line.startswith("passed:") for line in lines)  # nothing to set apart


# ---- merge across machines ------------------------------------------------------------------
def write(path, results):
    path.write_text(json.dumps(results.to_dict()))
    return str(path)


def test_merge_keeps_each_machines_rows_apart_and_fails_on_any_failure(tmp_path, capsys):
    a = write(tmp_path / "a.json", run("cpu-a-4c-t1-aaaa", failing=False))
    b = write(tmp_path / "b.json", run("cpu-b-8c-t1-bbbb", failing=True))
    md, page, merged = tmp_path / "m.md", tmp_path / "m.html", tmp_path / "m.json"
    code = cli.main(
        ["report", "merge", a, b, "--markdown", str(md), "--html", str(page), "--json", str(merged)]
    )
    assert code == 1
    out = capsys.readouterr().out
    assert "cxrperf: FAILED - 2 of 4 backend(s) on 2 machines" in out
    assert "compile @ cpu-b-8c-t1-bbbb: latency REGRESSED +30%" in out
    text = md.read_text()
    assert "| cpu-a-4c-t1-aaaa | eager |" in text and "| cpu-b-8c-t1-bbbb | eager |" in text
    assert "cpu-b-8c-t1-bbbb" in page.read_text()
    data = json.loads(merged.read_text())
    assert [r["machine"] for r in data["merged_runs"]] == ["cpu-a-4c-t1-aaaa", "cpu-b-8c-t1-bbbb"]
    assert {"machine": "cpu-b-8c-t1-bbbb", "backend": "compile"} in data["failed"]

    assert cli.main(["report", "merge", a]) == 0


def test_merge_never_hides_a_second_run_of_one_machine():
    report = MergedReport()
    report.add(run("cpu-a", failing=False))
    report.add(run("cpu-a", failing=False))
    assert [m for m, _ in report.runs] == ["cpu-a", "cpu-a #2"]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        ("{not json", "not JSON"),
        ('{"schema_version": 1}', "not a cxrperf results file"),
        ('{"schema_version": 7, "backends": {}}', "results schema 7 is not supported"),
    ],
)
def test_merge_of_foreign_input_exits_2_with_a_clear_message(tmp_path, capsys, content, message):
    path = tmp_path / "in.json"
    if content is not None:
        path.write_text(content)
    assert cli.main(["report", "merge", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err


def test_merge_refuses_a_directory_as_output(tmp_path, capsys):
    a = write(tmp_path / "a.json", run(failing=False))
    assert cli.main(["report", "merge", a, "--html", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


# ---- the result model and the writer underneath ---------------------------------------------
def test_studies_survive_json_and_merge():
    results = run()
    back = RunResults.from_dict(json.loads(json.dumps(results.to_dict())))
    assert back.studies == results.studies
    other = RunResults(studies={"study-002": {"images": {}, "indication": ""}})
    assert set(results.merge(other).studies) == {"study-001", "study-002"}
    assert RunResults.from_dict({"schema_version": 1, "backends": {}}).studies == {}


def test_text_is_written_atomically(tmp_path):
    target = tmp_path / "deep" / "r.md"
    write_text_atomic(target, "héllo\n")
    assert target.read_text(encoding="utf-8") == "héllo\n"
    assert [p.name for p in target.parent.iterdir()] == ["r.md"]


# ---- what to deploy --------------------------------------------------------------------------


def _passing(label, median):
    result = backend(label, samples=(median, median * 1.01, median * 0.99))
    result.control_samples_s = [0.8, 0.8, 0.8]
    return result


def test_the_fastest_equivalent_backend_is_named_with_its_class_and_the_runner_up():
    results = run(failing=False)
    results.backends["openvino"] = _passing("openvino", 0.4)  # 2.0x
    results.backends["openvino-w8a8"] = _passing("openvino-w8a8", 0.2)  # 4.0x
    results.backends["eager+slow=1.5"] = _passing("eager+slow=1.5", 0.1)  # a slowed control
    wrong = _passing("openvino-int4", 0.1)  # fastest of all, but says something else
    wrong.equivalence["study-001"]["token_ids"] = {"ok": False, "message": "differ at 3"}
    results.backends["openvino-int4"] = wrong
    unchecked = _passing("compile", 0.15)  # equivalence never ran: no recommendation
    unchecked.equivalence.clear()
    results.backends["compile"] = unchecked
    [fastest] = model.fastest_equivalent([("", results)])
    assert (fastest.label, round(fastest.speedup, 2)) == ("openvino-w8a8", 4.0)
    assert fastest.runner_up == ("openvino", 2.0)
    line = fastest.line()
    assert "machine class cpu-a-4c-t1-aaaa" in line and "4.00x eager fp32" in line
    assert "next: openvino 2.00x" in line
    assert line in summary_lines(results)
    assert line in markdown.render(results)
    assert line in html.render(results)
    data = json_report.build_report(results)["fastest_equivalent"]
    assert data["backend"] == "openvino-w8a8" and data["runner_up"]["backend"] == "openvino"


def test_no_recommendation_without_a_passing_equivalent_backend():
    results = run(failing=True)  # compile regressed, openvino's findings differ
    assert model.fastest_equivalent([("", results)]) == []
    assert not any("fastest equivalent" in line for line in summary_lines(results))
    assert json_report.build_report(results)["fastest_equivalent"] is None
