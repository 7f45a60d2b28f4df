"""The throughput test in every report: the rows derived once (report/model.py), the terminal
summary, Markdown, HTML, BMF, the JSON report and `cxrperf report merge`. Hand-built RunResults:
no model, no pytest run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from pytest_cxrperf import cli
from pytest_cxrperf.backends.batching import ONE_AT_A_TIME, STATIC
from pytest_cxrperf.gate.decision import MISSING, OK, REGRESSED, Verdict
from pytest_cxrperf.report import bmf, html, json_report, markdown, model
from pytest_cxrperf.report.terminal import summary_lines
from pytest_cxrperf.results import BackendResult, RunResults
from pytest_cxrperf.throughput import ThroughputFigures

from .test_report_writers import ROOT, backend, comparison, run

# a worklist of 16 studies, 4 in flight: median round 30 s -> 1920 studies/h; one at a time
# median 72 s -> 800 studies/h (2.40x); 512 tokens / 30 s = 17.07 tokens/s
LATENCIES = [6.0] * 4 + [7.0] * 4 + [8.0] * 4 + [9.0, 9.0, 9.0, 10.0]  # p50 7.5, p95 9.25, p99 9.85
COST = 0.85  # per hour: 0.85 * 1000 / 1920 = 0.443 per 1,000 reports
CLASS = "intel-x86_64-avx512-16c-t8-aaaa"


def ok_checks(*, single=True):
    return {
        "batched_vs_single": {"ok": single, "message": "identical" if single else "differ at 7"},
        "batched_vs_reference": {"ok": True, "message": "identical"},
        "clinical_findings": {"ok": True, "message": "same findings"},
    }


def figures(
    scale=1.0, *, cost=COST, gate=None, single=True, mode=STATIC, concurrency=4, sequential=None
):
    """Figures ``scale`` times slower than the reference numbers above."""
    return ThroughputFigures(
        concurrency=concurrency,
        worklist=16,
        mode=mode,
        samples_s=[32.0 * scale, 30.0 * scale, 28.8 * scale],
        control_samples_s=[31.0, 30.5, 30.0],
        sequential_samples_s=sequential or [72.0 * scale, 70.0 * scale, 74.0 * scale],
        tokens=512,
        latencies_s=[v * scale for v in LATENCIES],
        peak_memory_mib=512.5,
        equivalence={"study-001": ok_checks(), "study-002": ok_checks(single=single)},
        gate=gate,
        cost_per_hour=cost,
    )


def tp_run(*, cost=COST, failing=True, fingerprint=CLASS):
    """eager (passing, cost), compile (throughput gate REGRESSED), openvino (batched report
    differs from its single-study report), on a run whose latency all passed."""
    results = run(fingerprint, failing=False)
    eager = results.backends["eager"]
    eager.throughput = figures(cost=cost, gate=Verdict("eager", OK, False, measure="throughput"))
    for label, median in (("compile", 0.4), ("openvino", 0.2)):
        result = backend(label, samples=(median, median * 1.01, median * 0.99))
        result.control_samples_s = [0.8, 0.8, 0.8]
        results.backends[label] = result
    slow = comparison(1.25, REGRESSED, (1.15, 1.35))
    regressed = Verdict(
        "compile", REGRESSED, True, 0.1, 0.01, "b/compile.throughput.json", None, slow,
        measure="throughput",
    )  # fmt: skip
    results.backends["compile"].throughput = figures(
        1.25 if failing else 0.8, cost=cost, gate=regressed if failing else None
    )
    results.backends["openvino"].throughput = figures(  # one at a time: as fast as sequential
        0.5, cost=cost, single=not failing, mode=ONE_AT_A_TIME, concurrency=2,
        sequential=[15.3, 15.0, 15.6],
    )  # fmt: skip
    return results


# ---- the rows ---------------------------------------------------------------------------------
def test_rows_carry_every_figure_in_the_order_of_the_main_table():
    runs = [("", tp_run())]
    rows = model.throughput_rows(runs)
    assert [r.label for r in rows] == [r.label for r in model.rows(runs)]
    eager = rows[0]
    assert (eager.concurrency, eager.worklist, eager.mode) == (4, 16, STATIC)
    assert eager.studies_per_hour == pytest.approx(1920)
    assert eager.studies_per_hour_range == pytest.approx((1800, 2000))  # 32 s and 28.8 s rounds
    assert eager.sequential_studies_per_hour == pytest.approx(800)
    assert eager.speedup_vs_sequential == pytest.approx(2.4)
    assert eager.latency_p95_s == pytest.approx(9.25)
    assert eager.cost_per_1000 == pytest.approx(0.85 * 1000 / 1920)
    assert eager.cells == {
        "precision": "fp32",
        "concurrency": "4",
        "worklist": "16",
        "mode": STATIC,
        "studies_per_hour": "1920",
        "sequential": "800",
        "speedup": "2.40x",
        "tokens_per_s": "17.1",
        "p50": "7.500",
        "p95": "9.250",
        "p99": "9.850",
        "peak_mib": "512.5",
        "cost": "0.443",
        "verdict": "ok",
        "equivalence": "ok (2 studies)",
    }
    assert eager.state == model.PASS
    compile_, openvino = rows[1:]
    assert compile_.state == model.FAIL and compile_.verdict == "REGRESSED -20% studies/h"
    assert "throughput regression" in compile_.verdict_message
    assert openvino.state == model.FAIL and openvino.verdict == "-"
    assert openvino.equivalence_failures == ("study-002: batched_vs_single",)
    assert openvino.equivalence_messages == ("differ at 7",)
    assert openvino.cells["equivalence"] == "FAIL (1)"


def test_no_rows_and_no_line_without_throughput_figures():
    runs = [("", run())]
    assert model.throughput_rows(runs) == [] and model.throughput_line(runs) is None


def test_the_line_names_worklist_concurrency_cost_and_machine_class():
    line = model.throughput_line([("", tp_run())])
    assert line == (
        f"throughput: worklist of 16 studies, concurrency 4 / 2 (per backend), cost per hour "
        f"0.85, machine class {CLASS}"
    )
    assert "no cost per hour given" in str(model.throughput_line([("", tp_run(cost=None))]))


def test_a_throughput_failure_fails_the_backend_and_the_headline():
    results = tp_run()
    assert results.failed == ["compile", "openvino"]
    title, failing, _ = model.headline([("", results)])
    assert title.startswith("cxrperf: FAILED - 2 of 3 backend(s)")
    assert any(
        p.startswith(
            "compile: throughput REGRESSED -20% studies/h (ratio 1.250, interval [1.150, 1.350]"
        )
        for p in failing
    )
    assert (
        "openvino: batched equivalence FAILED: 1 check(s) on 1 of 2 studies "
        "(batched_vs_single; study-002)"
    ) in failing


def test_a_missing_throughput_baseline_warns_once():
    results = tp_run(failing=False)
    results.backends["compile"].throughput.gate = Verdict("compile", MISSING, False)
    _, _, warning = model.headline([("", results)])
    assert any("no baseline: compile (throughput)" in w for w in warning)
    assert model.state(results.backends["compile"]) == model.WARN


def test_the_fastest_equivalent_never_names_a_backend_that_failed_its_throughput_test():
    results = tp_run(failing=False)  # openvino 4.0x, compile 2.0x: both pass
    [fastest] = model.fastest_equivalent([("", results)])
    assert fastest.label == "openvino"
    results = tp_run(failing=True)  # openvino's batched reports differ, compile's gate failed
    assert model.fastest_equivalent([("", results)]) == []
    results.backends["openvino"].throughput.equivalence["study-002"] = ok_checks()
    [fastest] = model.fastest_equivalent([("", results)])
    assert fastest.label == "openvino" and fastest.runner_up is None  # compile: gate failed


# ---- terminal ---------------------------------------------------------------------------------
def test_terminal_has_a_compact_throughput_table_and_the_failure_lines():
    lines = summary_lines(tp_run())
    start = lines.index(next(line for line in lines if line.startswith("throughput: worklist")))
    header, _rule, eager, compile_, openvino = lines[start + 1 : start + 6]
    assert header.split() == [
        "backend", "C", "studies/h", "x", "seq", "p95", "s", "tokens/s", "cost/1000", "gate",
        "batched", "eq",
    ]  # fmt: skip
    assert eager.split() == [
        "eager", "4", "1920", "2.40x", "9.250", "17.1", "0.443", "ok", "ok", "(2", "studies)",
    ]  # fmt: skip
    assert compile_.split()[:3] == ["compile", "4", "1536"]  # 1920 / 1.25
    assert "REGRESSED -20% studies/h" in compile_
    assert openvino.split()[:4] == ["openvino", "2", "3840", "1.02x"]  # 15.3 s / 15 s
    assert openvino.endswith("FAIL (1)")
    assert all(len(line) <= 100 for line in lines[start + 1 : start + 7])  # table and note
    text = "\n".join(lines)
    assert "throughput gate FAILED: compile: throughput regression" in text
    assert "batched equivalence FAILED: openvino: study-002: batched_vs_single" in text
    assert "differ at 7" not in text  # the check's message with -v only
    assert "  batched_vs_single: differ at 7" in "\n".join(summary_lines(tp_run(), verbose=1))


def test_terminal_lists_a_missing_throughput_baseline_once():
    results = tp_run(failing=False)
    results.backends["compile"].throughput.gate = Verdict("compile", MISSING, False)
    text = "\n".join(summary_lines(results))
    assert "no throughput baseline: compile: record with --cxr-update-baselines" in text
    assert "no latency baseline" not in text


def test_terminal_cost_column_only_with_a_cost_and_no_section_without_throughput():
    lines = summary_lines(tp_run(cost=None, failing=False))
    header = next(line for line in lines if line.split()[:2] == ["backend", "C"])
    assert "cost/1000" not in header and "studies/h" in header
    assert not any("FAILED" in line for line in lines)
    plain = summary_lines(run())
    assert not any(line.startswith("throughput") or " C " in line for line in plain)
    assert not any("batched" in line for line in plain)


# ---- Markdown ---------------------------------------------------------------------------------
def test_markdown_has_a_throughput_section_with_the_table_and_its_conditions():
    text = markdown.render(tp_run())
    section = text[text.index("### Throughput") :]
    assert section.index("worklist of 16 studies") < section.index("| backend | status |")
    assert f"machine class {CLASS}" in section and "cost per hour 0.85" in section
    assert (
        "| backend | status | precision | C | mode | studies/h | sequential studies/h | "
        "x sequential | tokens/s | p50 s | p95 s | p99 s | peak MiB | cost/1000 | "
        "throughput gate | batched equivalence |"
    ) in section
    assert (
        f"| eager | :white_check_mark: ok | fp32 | 4 | {STATIC} | 1920 | 800 | 2.40x | 17.1 | "
        "7.500 | 9.250 | 9.850 | 512.5 | 0.443 | ok | ok (2 studies) |"
    ) in section
    assert "| compile | :x: fail |" in section and "| REGRESSED -20% studies/h |" in section
    assert "| openvino | :x: fail |" in section and "| FAIL (1) |" in section
    head = text[: text.index("| backend |")]
    assert "compile: throughput REGRESSED -20% studies/h" in head
    assert "openvino: batched equivalence FAILED" in head
    assert "study-002: batched batched_vs_single: differ at 7" in text  # the folded detail
    assert text.index("### Throughput") < text.index("<details>")  # kept when details go


def test_markdown_without_throughput_or_cost():
    assert "Throughput" not in markdown.render(run())
    text = markdown.render(tp_run(cost=None))
    assert "### Throughput" in text and "cost/1000" not in text
    assert "no cost per hour given" in text


# ---- HTML -------------------------------------------------------------------------------------
def test_html_has_the_throughput_table_and_two_accessible_charts():
    page = html.render(tp_run())
    section = page[page.index("<h2>Throughput") : page.index("<h2>Studies")]
    assert "<th>studies/h</th>" in section and "<th>cost/1000</th>" in section
    assert "<td>1920</td><td>800</td><td>2.40x</td>" in section
    assert "<tr class='fail'><td>compile</td>" in section
    assert section.count("<svg") == 2
    assert "aria-label='studies per hour at each backend" in section
    assert "<title>studies per hour" in section
    assert "1920/h C=4 (2.40x)" in section and "800/h one at a time" in section
    bar = "fill='#e15759'><title>compile, 1536/h C=4 (2.40x), gate REGRESSED -20% studies/h"
    assert bar in section
    assert "3840/h C=2 (1.02x)" in section and "3765/h one at a time" in section  # openvino
    assert "p95 9.250 s (p50 7.500, p99 9.850)" in section
    assert "throughput gate: REGRESSED -20% studies/h" in section
    assert "throughput regression" in section
    assert "openvino: batched equivalence failed" in section
    assert "<li>study-002: batched_vs_single: differ at 7</li>" in section
    headline = page[: page.index("<table>")]
    assert "compile: throughput REGRESSED -20% studies/h" in headline


def test_html_without_throughput_has_no_section_and_without_cost_no_cost_column():
    assert "Throughput" not in html.render(run())
    page = html.render(tp_run(cost=None))
    assert "<h2>Throughput" in page and "cost/1000" not in page


@pytest.mark.skipif(
    not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")),
    reason="no Chromium here: apt-get install chromium to render the HTML report headless",
)
def test_the_throughput_section_renders_in_headless_chromium(tmp_path):
    report, shot = tmp_path / "report.html", tmp_path / "report.png"
    html.write_html(report, [("cpu-a", tp_run(fingerprint="cpu-a")), ("cpu-b", tp_run(cost=None))])
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_html.py"), str(report),
         "--screenshot", str(shot)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


# ---- BMF --------------------------------------------------------------------------------------
def test_bmf_has_a_throughput_benchmark_per_backend():
    data = bmf.build(tp_run())
    json.dumps(data)
    prefix = "cxrperf/toy"
    eager = data[f"{prefix}/eager/throughput-c4-n16"]
    assert eager["throughput"] == {
        "value": pytest.approx(1920 / 3600),  # studies per second: Bencher's throughput unit
        "lower_value": pytest.approx(1800 / 3600),
        "upper_value": pytest.approx(2000 / 3600),
    }
    assert eager["speedup-vs-sequential"] == {"value": pytest.approx(2.4)}
    assert eager["latency-p95"] == {"value": pytest.approx(9.25)}
    assert eager["cost-per-1000"] == {"value": pytest.approx(0.85 * 1000 / 1920)}
    assert data[f"{prefix}/openvino/throughput-c2-n16"]["latency-p95"]["value"] == pytest.approx(
        9.25 * 0.5
    )
    assert "latency" in data[f"{prefix}/eager"] and "throughput" not in data[f"{prefix}/eager"]
    for measures in data.values():
        for metric in measures.values():
            assert set(metric) <= {"value", "lower_value", "upper_value"}
            assert all(isinstance(v, float) for v in metric.values())


def test_bmf_cost_only_with_a_cost_and_nothing_without_throughput():
    data = bmf.build(tp_run(cost=None))
    assert not any("cost-per-1000" in measures for measures in data.values())
    assert "throughput" in data["cxrperf/toy/eager/throughput-c4-n16"]
    assert not any("throughput" in name for name in bmf.build(run()))


def test_bmf_names_the_machine_class_as_the_latency_benchmarks_do():
    results = tp_run()
    results.machine["machine_class"] = {"key": CLASS}
    names = set(bmf.build(results))
    assert f"cxrperf/{CLASS}/toy/eager" in names
    assert f"cxrperf/{CLASS}/toy/eager/throughput-c4-n16" in names


# ---- JSON and merges --------------------------------------------------------------------------
def test_the_json_report_round_trips_the_throughput_figures():
    results = tp_run()
    data = json.loads(json.dumps(json_report.build_report(results)))
    entry = data["backends"]["eager"]["throughput"]
    assert entry["studies_per_hour"] == pytest.approx(1920)
    assert entry["cost_per_1000"] == pytest.approx(0.85 * 1000 / 1920)
    assert data["backends"]["compile"]["throughput"]["gate"]["status"] == "regressed"
    back = RunResults.from_dict(data)
    assert model.throughput_rows([("", back)]) == model.throughput_rows([("", results)])
    assert back.failed == ["compile", "openvino"]
    assert "throughput" not in json.loads(json.dumps(run().to_dict()))["backends"]["eager"]


def test_a_workers_throughput_joins_anothers_latency_in_one_run():
    timed = tp_run()
    for result in timed.backends.values():
        result.throughput = None
    worker = RunResults(backends={"compile": BackendResult("compile", "bf16")})
    worker.backends["compile"].throughput = tp_run().backends["compile"].throughput
    merged = timed.merge(worker)
    [row] = model.throughput_rows([("", merged)])
    assert row.label == "compile" and row.verdict == "REGRESSED -20% studies/h"
    assert merged.backends["compile"].samples_s == timed.backends["compile"].samples_s
    assert merged.failed == ["compile"]


def test_report_merge_keeps_every_machines_throughput(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(tp_run(failing=False, fingerprint="cpu-a").to_dict()))
    b.write_text(json.dumps(tp_run(failing=True, fingerprint="cpu-b").to_dict()))
    md, page, merged = tmp_path / "m.md", tmp_path / "m.html", tmp_path / "m.json"
    argv = ["report", "merge", str(a), str(b), "--markdown", str(md), "--html", str(page)]
    assert cli.main([*argv, "--json", str(merged)]) == 1
    out = capsys.readouterr().out
    assert "compile @ cpu-b: throughput REGRESSED -20% studies/h" in out
    assert "openvino @ cpu-b: batched equivalence FAILED" in out
    text = md.read_text()
    section = text[text.index("### Throughput") :]
    assert "| machine | backend | status | precision | C |" in section
    assert "| cpu-a | compile | :white_check_mark: ok |" in section
    assert "| cpu-b | compile | :x: fail |" in section
    assert "machine class cpu-a, cpu-b" in section
    assert "compile @ cpu-b" in page.read_text()
    data = json.loads(merged.read_text())
    runs = {r["machine"]: r["results"]["backends"] for r in data["merged_runs"]}
    assert runs["cpu-a"]["compile"]["throughput"]["gate"] is None
    assert runs["cpu-b"]["compile"]["throughput"]["gate"]["status"] == "regressed"
    assert {"machine": "cpu-b", "backend": "openvino"} in data["failed"]
