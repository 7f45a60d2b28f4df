"""Worklists, throughput figures and batched generation (equal to one study at a time)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from pytest_cxrperf.backends.batched_torch import _layers, generate_batch, merged_cache
from pytest_cxrperf.backends.batching import STATIC, run_batched
from pytest_cxrperf.backends.torch_runner import TorchRunner
from pytest_cxrperf.gate.equivalence import compare_tokens
from pytest_cxrperf.throughput import (
    Throughput,
    curve_lines,
    knee,
    parse_concurrency,
    parse_cost,
    percentile,
    progress_line,
    worklist,
)

# ---- worklists and figures (pure) -------------------------------------------------------------


def test_a_worklist_repeats_every_study_in_varied_reproducible_order():
    order = worklist(4, 10, seed=3)
    assert len(order) == 10
    assert sorted(order[:4]) == sorted(order[4:8]) == [0, 1, 2, 3]  # each repetition whole
    longer = worklist(4, 12, seed=3)
    assert len({tuple(longer[i : i + 4]) for i in (0, 4, 8)}) > 1  # repetitions vary in order
    assert worklist(4, 10, seed=3) == order and worklist(4, 10, seed=4) != order
    with pytest.raises(ValueError):
        worklist(0, 3)
    with pytest.raises(ValueError):
        worklist(3, 0)


def test_percentile_interpolates_like_numpy():
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 50) == pytest.approx(10.5)
    assert percentile(values, 95) == pytest.approx(19.05)
    assert percentile([2.0], 99) == 2.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile(values, 101)


class OneAtATime:
    """A runner without a batched path whose every generation takes ``spans`` seconds of a fake
    clock, in turn, and ten tokens."""

    def __init__(self, spans):
        self.spans, self.now = iter(spans), 0.0

    def clock(self):
        return self.now

    def generate(self, inputs, max_new_tokens, *, force_length=False, return_logits=False):
        self.now += next(self.spans)
        return SimpleNamespace(token_ids=[1] * 10, text="", step_logits=None)


def test_throughput_from_a_run_counts_studies_tokens_and_each_batchs_span():
    runner = OneAtATime([1.0, 1.0, 2.0, 1.0, 1.0])
    items = [SimpleNamespace(study_name=name) for name in "abcde"]
    run = run_batched(runner, items, 2, 10, clock=runner.clock)
    result = Throughput.from_run("x", run)
    assert (result.studies, result.tokens, result.seconds) == (5, 50, 6.0)
    assert result.concurrency == 2 and not result.batched  # one at a time: no batched path
    assert result.latencies_s == (2.0, 2.0, 3.0, 3.0, 1.0)  # the last batch holds one study
    assert result.studies_per_hour == pytest.approx(3000.0)
    assert result.tokens_per_s == pytest.approx(50 / 6)
    assert result.cost_per_1000(3.0) == pytest.approx(1.0)  # $3/h at 3,000 studies/h
    data = result.to_dict(cost_per_hour=3.0)
    assert data["latency_p50_s"] == 2.0 and data["cost_per_1000"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="concurrency"):
        run_batched(runner, items, 0, 10)
    with pytest.raises(ValueError, match="empty"):
        run_batched(runner, [], 2, 10)


def point(concurrency, per_hour):
    return Throughput("x", concurrency, 100, 100 / per_hour * 3600, 1000, (1.0, 2.0))


def test_the_knee_is_the_lowest_concurrency_near_the_best_throughput():
    curve = [point(1, 100), point(2, 180), point(4, 240), point(8, 250)]
    assert knee(curve).concurrency == 4  # 240 >= 0.9 x 250
    lines = curve_lines(curve, cost_per_hour=2.0)
    assert lines[0].split() == ["concurrency", "studies/h", "tokens/s", "p50", "s", "p95", "s",
                                "p99", "s", "cost/1000"]  # fmt: skip
    assert any(line.startswith("4 (knee)") for line in lines)
    with pytest.raises(ValueError):
        knee([])


@pytest.mark.parametrize(
    ("text", "message"),
    [("0,2", "between 1 and"), ("9", "between 1 and"), ("a,b", "integers"), (",", "at least")],
)
def test_concurrency_levels_are_checked_against_the_worklist(text, message):
    assert parse_concurrency("4,1,2,2", 8) == [1, 2, 4]
    with pytest.raises(ValueError, match=message):
        parse_concurrency(text, 8)


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "cheap"])
def test_a_cost_must_be_a_positive_number(text):
    assert parse_cost(None) is None and parse_cost("0.85") == 0.85
    with pytest.raises(ValueError, match="--cost-per-hour"):
        parse_cost(text)
    with pytest.raises(ValueError, match="positive"):
        point(1, 100).cost_per_1000(0.0)


# ---- batched generation ------------------------------------------------------------------------


def test_merged_caches_end_every_prompt_at_the_last_column():
    """Two single-study caches (3 and 5 positions, two layers) as one batch cache: each row's
    keys and values end at the last column, the shorter one left-padded with zeros and masked."""
    from transformers import DynamicCache

    caches = []
    for length, fill in ((3, 1.0), (5, 2.0)):
        cache = DynamicCache()
        for layer in range(2):
            states = torch.full((1, 2, length, 4), fill + layer)
            cache.update(states, -states, layer)
        caches.append(cache)
    merged, mask = merged_cache(caches)
    assert mask.tolist() == [[0, 0, 1, 1, 1], [1] * 5]
    assert merged.get_seq_length() == 5
    for layer, (keys, values) in enumerate(_layers(merged)):
        assert keys.shape == values.shape == (2, 2, 5, 4)
        assert float(keys[0, :, :2].abs().sum()) == 0  # the padding
        assert torch.equal(keys[0, :, 2:], torch.full((2, 3, 4), 1.0 + layer))
        assert torch.equal(values[1], -torch.full((2, 5, 4), 2.0 + layer))


@pytest.fixture(scope="module")
def toy():
    from pytest_cxrperf.model.loader import load_model
    from pytest_cxrperf.model.study import load_studies

    reference = load_model("toy")
    inputs = [reference.processor(study) for study in load_studies()]
    return TorchRunner(reference.model, reference.processor), inputs


def test_a_batch_says_what_each_study_says_alone(toy):
    """Prompts alone, the merged left-padded cache, the mask and per-row stops leave every
    report as it is alone: the same tokens (or a divergence at a near tie of the single run),
    the first token's logits exactly (the same prompt pass) and the rest to rounding."""
    runner, inputs = toy
    assert len({i.prompt_length for i in inputs}) > 1  # the prompts really differ in length
    outputs, timings = generate_batch(runner, inputs, 32, return_logits=True)
    assert timings.steps >= max(len(o.token_ids) for o in outputs) - 1
    for single_inputs, batched in zip(inputs, outputs, strict=True):
        alone = runner.generate(single_inputs, 32, return_logits=True)
        assert batched.study_name == single_inputs.study_name
        check = compare_tokens(alone.token_ids, batched.token_ids, alone.step_logits, 0.0)
        assert check.ok, check.message
        assert batched.text == alone.text
        assert torch.allclose(batched.step_logits, alone.step_logits, atol=1e-4, rtol=1e-4)
        assert torch.equal(batched.step_logits[0], alone.step_logits[0])


def test_a_forced_length_batch_runs_every_row_to_the_end(toy):
    runner, inputs = toy
    outputs, timings = generate_batch(runner, inputs[:2], 6, force_length=True)
    assert [len(o.token_ids) for o in outputs] == [6, 6] and timings.steps == 5
    with pytest.raises(ValueError):
        generate_batch(runner, [], 4)


# ---- cxrperf throughput ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--concurrency", "0,2"], "--concurrency 0"),
        (["--concurrency", "9"], "--concurrency 9"),
        (["--cost-per-hour", "0"], "--cost-per-hour"),
        (["--cost-per-hour", "a lot"], "--cost-per-hour"),
        (["--backend", "nope"], "--backend"),
        (["--worklist", "0"], "--worklist"),
        (
            ["--model", "maira2", "--concurrency", "1,300", "--worklist", "300"],
            "--concurrency 300: 300 studies in flight",
        ),
    ],
)
def test_bad_throughput_options_are_a_usage_error_before_any_model(monkeypatch, capsys, argv,
                                                                   message):  # fmt: skip
    from pytest_cxrperf import cli
    from pytest_cxrperf.model import loader

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr(loader, "load_model", no_model)
    assert cli.main(["throughput", *argv]) == 4
    assert message in capsys.readouterr().err


def test_throughput_sweep_writes_each_levels_figures(tmp_path, capsys):
    from pytest_cxrperf import cli

    out = tmp_path / "curve.json"
    argv = ["throughput", "--backend", "eager", "--concurrency", "1,2", "--worklist", "4",
            "--max-new-tokens", "4", "--cost-per-hour", "1.5", "--json", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert f"eager (fp32; worklist of 4 studies): {STATIC}" in printed
    assert "(knee)" in printed and "cost/1000" in printed
    data = json.loads(out.read_text())["backends"]["eager"]
    assert data["batched"] and data["batched_equals_single"] and data["mode"] == STATIC
    assert [p["concurrency"] for p in data["curve"]] == [1, 2]
    for p in data["curve"]:
        assert p["studies"] == 4 and p["tokens"] == 16
        assert p["cost_per_1000"] == pytest.approx(1.5 * 1000 / p["studies_per_hour"])
        assert p["latency_p50_s"] <= p["latency_p95_s"] <= p["latency_p99_s"]


def test_a_worklist_that_cannot_fit_names_what_would():
    from pytest_cxrperf.model.loader import architecture_of
    from pytest_cxrperf.throughput import in_flight_bytes, worklist_fit_problem

    decoder = architecture_of("bench").decoder
    one = in_flight_bytes(decoder, 3000, 1)
    assert in_flight_bytes(decoder, 3000, 4) == 4 * one  # sequences do not share their memory
    assert in_flight_bytes(decoder, 6000, 1) > 2 * one  # attention scores grow with L squared
    assert worklist_fit_problem(decoder, 3000, 4, available_bytes=100 * one) is None
    problem = worklist_fit_problem(decoder, 3000, 4, available_bytes=int(2.6 * one))
    assert problem is not None and "--cxr-concurrency=4" in problem and "lower it to 2" in problem
    hopeless = worklist_fit_problem(decoder, 3000, 1, available_bytes=one // 2)
    assert hopeless is not None and "not even one fits" in hopeless


def test_the_sweep_progress_bar_counts_levels_and_estimates_what_is_left():
    assert progress_line(0, 12, 0.0, "eager: round 1/3, concurrency 4") == (
        "[....................] 0/12  0s  eager: round 1/3, concurrency 4"
    )
    # 3 of 12 levels in 45 s: 15 s a level, 9 to go
    assert (
        progress_line(3, 12, 45.0, "eager")
        == "[#####...............] 3/12  45s, ~2m 15s left  eager"
    )
    assert progress_line(12, 12, 185.0, "done").startswith("[" + "#" * 20 + "] 12/12  3m 05s  ")
    for done, total in ((13, 12), (-1, 12), (0, 0)):
        with pytest.raises(ValueError):
            progress_line(done, total, 1.0, "")
