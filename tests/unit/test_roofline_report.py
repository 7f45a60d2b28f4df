"""The roofline in a run's output: the ceilings a run uses (never measured by surprise), each
timed backend's fractions computed once, kept through JSON and merges, and shown by the terminal,
Markdown and HTML writers (or why not). Hand-built RunResults: no model, no pytest run."""

import json

import pytest

from pytest_cxrperf import ceilings as ceilings_module
from pytest_cxrperf.backends.timings import StageTimings
from pytest_cxrperf.ceilings import Ceilings, Sizes, cache_path, for_run, measure
from pytest_cxrperf.errors import SettingsError
from pytest_cxrperf.report import html, markdown, model
from pytest_cxrperf.report.terminal import summary_lines
from pytest_cxrperf.results import BackendResult, RooflineBasis, RunResults
from pytest_cxrperf.roofline import ModelCost, fill_roofline, roofline_fractions
from pytest_cxrperf.settings import build_settings

CEILINGS = Ceilings(
    fp32_gflops=100.0,
    bf16_gflops=200.0,
    int8_gops=None,
    bandwidth_gbs=50.0,
    threads=2,
    fingerprint="test",
    environment="test",
    sizes={},
)
COST = ModelCost(
    vision_flops=40e9,
    prefill_flops=120e9,
    decode_weight_params=1e9,
    kv_elements_per_position=1000.0,
    prompt_length=984,
)
# medians: vision 1 s, prefill 2 s, 0.1 s per token
STAGES = [StageTimings(1.0, 2.0, (0.1, 0.1)) for _ in range(3)]


def timed(label, precision, **details):
    return BackendResult(
        label=label,
        precision=precision,
        samples_s=[3.2, 3.2, 3.2],
        stages=list(STAGES),
        prepare_details=dict(details),
    )


def run():
    results = RunResults(
        settings={"model": "toy", "threads": 2, "max_new_tokens": 32, "warmup": 0},
        model={"name": "toy", "cost": COST.to_dict()},
    )
    for result in (
        timed("eager", "fp32"),
        timed("openvino", "bf16", kv_cache_precision="u8"),
        BackendResult(label="checked", precision="bf16", outputs={"s": "text"}),
    ):
        results.backends[result.label] = result
    results.backends["checked"].equivalence["s"] = {"token_ids": {"ok": True}}
    return results


# ---- computing the fractions, once -------------------------------------------------------------
def test_fill_roofline_gives_every_timed_backend_its_fractions():
    results = run()
    fill_roofline(results, CEILINGS, "cached")
    eager = results.backends["eager"].roofline
    assert eager["vision"]["fraction"] == pytest.approx(40 / 100)  # 40 GFLOP/s of fp32's 100
    assert eager["prefill"]["fraction"] == pytest.approx(60 / 100)
    openvino = results.backends["openvino"].roofline
    assert openvino["prefill"]["fraction"] == pytest.approx(60 / 200)  # bf16 ceiling
    # its u8 KV cache is charged 1 byte per element, eager's f32 cache 4
    medians = {"per_token_s": 0.1}
    u8 = roofline_fractions(COST, medians, "bf16", CEILINGS, kv_bytes=1.0)
    assert openvino["decode"] == u8["decode"]
    assert eager["decode"] == roofline_fractions(COST, medians, "fp32", CEILINGS)["decode"]
    assert results.backends["checked"].roofline == {}  # not timed
    assert results.roofline == RooflineBasis(CEILINGS.to_dict(), "cached", "")


def test_without_ceilings_or_cost_the_run_says_why():
    results = run()
    fill_roofline(results, None, "no ceilings cached: run `cxrperf ceilings --threads 2`")
    assert results.roofline.ceilings is None and "cxrperf ceilings" in results.roofline.note
    assert all(not r.roofline for r in results.backends.values())
    results = run()
    del results.model["cost"]
    fill_roofline(results, CEILINGS, "cached")
    assert "not counted" in results.roofline.note
    assert model.roofline_cell(results.backends["eager"], results.roofline) == "n/a"


def test_model_cost_survives_plain_numbers():
    assert ModelCost.from_dict(json.loads(json.dumps(COST.to_dict()))) == COST


# ---- results: JSON and merges ------------------------------------------------------------------
def test_fractions_and_their_basis_survive_json_and_merge():
    results = run()
    fill_roofline(results, CEILINGS, "cached")
    data = json.loads(json.dumps(results.to_dict()))
    assert data["roofline"]["source"] == "cached"
    assert "roofline" in data["backends"]["eager"] and "roofline" not in data["backends"]["checked"]
    back = RunResults.from_dict(data)
    assert back == results
    # a worker's part without the fractions keeps the other's
    part = RunResults(backends={"eager": BackendResult("eager", outputs={"s": "t"})})
    merged = back.merge(part)
    assert merged.backends["eager"].roofline == results.backends["eager"].roofline
    assert merged.roofline == results.roofline


def test_results_of_earlier_releases_read_without_a_roofline():
    data = run().to_dict()
    assert "roofline" not in data  # never looked for: no key, as earlier releases wrote
    back = RunResults.from_dict(data)
    assert back.roofline is None and back.backends["eager"].roofline == {}


# ---- writers ---------------------------------------------------------------------------------
def test_terminal_shows_the_column_and_what_it_is_of():
    results = run()
    fill_roofline(results, CEILINGS, "cached")
    lines = summary_lines(results)
    assert "roofline v/p/d" in lines[0]
    eager = next(line for line in lines if line.startswith("eager "))
    assert "40/60/" in eager and " %" in eager
    assert next(line for line in lines if line.startswith("checked ")).count(" - ") >= 1
    note = next(line for line in lines if line.startswith("roofline v/p/d:"))
    assert "ceilings (cached, 2 threads): fp32 100, bf16 200 GFLOP/s, int8 - GOP/s" in note


def test_terminal_says_how_to_get_ceilings_rather_than_dropping_the_column():
    results = run()
    fill_roofline(results, None, "no ceilings cached ...: run `cxrperf ceilings --threads 2`")
    lines = summary_lines(results)
    assert "roofline v/p/d" in lines[0]
    assert "no ceilings" in next(line for line in lines if line.startswith("eager "))
    assert "roofline v/p/d: no ceilings cached ...: run `cxrperf ceilings --threads 2`" in lines


def test_no_column_where_the_run_never_looked_for_ceilings():
    results = run()  # --cxr-ceilings=off, nothing timed, or an earlier release's results
    assert "roofline" not in summary_lines(results)[0]
    assert "roofline" not in markdown.render(results)
    assert "Roofline" not in html.render(results)


def test_percentages_keep_small_fractions_readable():
    assert [model.percent(f) for f in (0.41, 1.12, 0.0994, 0.003)] == ["41", "112", "9.9", "0.3"]
    partial = BackendResult("x", roofline={"prefill": {"fraction": 0.5}})
    assert model.roofline_cell(partial, None) == "-/50/- %"


def test_markdown_has_the_column_the_ceilings_and_each_stage_in_the_details():
    results = run()
    fill_roofline(results, CEILINGS, "cached")
    text = markdown.render(results)
    assert "| roofline v/p/d |" in text
    assert "| 40/60/" in text
    assert "<sub>roofline v/p/d: each stage&#x27;s % of this machine&#x27;s ceiling" in text
    assert "roofline: vision 40 of 100 GFLOP/s fp32 matmul, 40 %" in text


def test_html_has_the_column_and_a_roofline_table():
    results = run()
    fill_roofline(results, CEILINGS, "cached")
    page = html.render(results)
    assert "<th>roofline v/p/d</th>" in page and "<h2>Roofline" in page
    assert "<td>200 GFLOP/s (bf16 matmul)</td>" in page  # openvino's prefill ceiling
    without = run()
    fill_roofline(without, None, "run `cxrperf ceilings --threads 2`")
    page = html.render(without)
    assert "<td>no ceilings</td>" in page and "run `cxrperf ceilings --threads 2`" in page


# ---- the ceilings a run uses -------------------------------------------------------------------
def test_a_run_reads_cached_ceilings_of_any_size_and_never_measures_unless_asked(
    tmp_path, monkeypatch
):
    def no_measuring(*args, **kwargs):
        raise AssertionError("measured by surprise")

    monkeypatch.setattr(ceilings_module, "measure", no_measuring)
    found, why = for_run("cached", 2, tmp_path)
    assert found is None
    assert "run `cxrperf ceilings --threads 2` once" in why and "--cxr-ceilings=measure" in why
    stored = Ceilings(**{**CEILINGS.__dict__, "environment": ceilings_module.environment_id()})
    path = cache_path(2, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(stored.to_dict()))  # sizes {}: not the defaults, still used
    assert for_run("cached", 2, tmp_path) == (stored, "cached")
    path.write_text(json.dumps({**stored.to_dict(), "environment": "py0-torch0-0"}))
    assert "predate this library environment" in for_run("cached", 2, tmp_path)[1]


def test_measure_mode_measures_and_caches_when_absent(tmp_path, monkeypatch):
    monkeypatch.setattr(ceilings_module, "Sizes", Sizes.tiny)
    monkeypatch.setattr(ceilings_module, "measure", lambda t, s=None: measure(t, Sizes.tiny()))
    found, source = for_run("measure", 1, tmp_path)
    assert found is not None and source.startswith("measured in this run")
    assert cache_path(1, tmp_path).is_file()
    assert for_run("cached", 1, tmp_path) == (found, "cached")
    (tmp_path / "afile").write_text("")  # a cache that cannot be written: still used this run
    found, source = for_run("measure", 1, tmp_path / "afile")
    assert found is not None and ", not cached: " in source


@pytest.mark.parametrize("value", ["", "cached", "measure", "off"])
def test_the_ceilings_option(value):
    s = build_settings(lambda n: value if n == "cxr_ceilings" else None, lambda n: "")
    assert s.ceilings == (value or "cached")


def test_a_bad_ceilings_option_names_the_choices():
    with pytest.raises(SettingsError, match="--cxr-ceilings='always': choose one of cached"):
        build_settings(lambda n: "always" if n == "cxr_ceilings" else None, lambda n: "")
