"""A worklist with several studies in flight (backends/batching.run_batched), per backend.

Pure parts first: the block table (which cache blocks each sequence owns) and the continuous
batching loop on a fake runner (admission when a sequence ends, never more than ``concurrency``
in flight, latencies on a fake clock). Then every backend that runs here, on the toy model: a
worklist's reports at several concurrencies are the reports each study gets alone (the same
tokens, or a divergence at a near tie of the single run; logits within the precision's
tolerance), in the worklist's order, each with its latency under load; the paged OpenVINO
backends batch continuously and reuse the blocks of finished sequences; the stateful ones run
side by side on OpenVINO streams over a second, throughput compilation.

Each backend is prepared once per module (OpenVINO exports go to a temporary cache: about 10 s
each on 2 cores; ``compile`` spends about a minute compiling, most of it for the batched shapes).
No wall-clock thresholds: only counts, orders and the clock's monotonicity.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pytest_cxrperf.backends.batching import ONE_AT_A_TIME, STATIC, batch_mode, run_batched
from pytest_cxrperf.backends.block_table import BlockTable, blocks_for, paged_feed
from pytest_cxrperf.backends.continuous import run_continuous
from pytest_cxrperf.backends.openvino_streams import STREAMS, streams_for
from pytest_cxrperf.backends.registry import get_backend_class
from pytest_cxrperf.gate.equivalence import compare_prefill_logits, compare_tokens, tolerances_for

# ---- the block table (pure) -------------------------------------------------------------------


def test_a_sequence_takes_the_lowest_free_blocks_and_gives_them_back():
    table = BlockTable(block_size=4, capacity=6)
    table.reserve("a", 5)  # 2 blocks
    table.reserve("b", 4)  # 1 block
    assert table.blocks("a") == [0, 1] and table.blocks("b") == [2]
    table.reserve("a", 8)  # still 2 blocks: nothing new
    table.reserve("a", 9)
    assert table.blocks("a") == [0, 1, 3] and table.free == 2
    table.release("a")
    assert table.live == 1 and table.free == 5
    table.reserve("c", 12)  # the freed blocks, lowest first
    assert table.blocks("c") == [0, 1, 3] and table.capacity == 6


def test_the_capacity_doubles_when_the_free_list_runs_short():
    table = BlockTable(block_size=2, capacity=0)
    table.reserve("a", 3)
    assert table.capacity == 2
    table.reserve("b", 2)  # one more block: doubled, not +1
    assert table.capacity == 4 and table.blocks("b") == [2]
    table.reserve("c", 20)  # 10 blocks, 1 free: at least what is missing
    assert table.capacity == 13 and len(table.blocks("c")) == 10
    assert sorted(table.blocks("a") + table.blocks("b") + table.blocks("c")) == list(range(13))
    with pytest.raises(ValueError):
        BlockTable(0)


def test_a_feed_lays_out_several_sequences_one_after_the_other():
    feed = paged_feed(pasts=[5, 0], news=[1, 3], blocks=[[4, 1], [0]])
    assert feed["past_lens"].tolist() == [5, 0]
    assert feed["subsequence_begins"].tolist() == [0, 1, 4]
    assert feed["block_indices_begins"].tolist() == [0, 2, 3]
    assert feed["block_indices"].tolist() == [4, 1, 0]
    assert feed["position_ids"].tolist() == [5, 0, 1, 2]
    assert int(feed["max_context_len"]) == 6
    assert blocks_for(6, 4) == 2 and blocks_for(8, 4) == 2 and blocks_for(0, 4) == 0


# ---- continuous batching on a fake runner (pure) ----------------------------------------------

EOS, WORD, VOCAB = 0, 7, 10


class FakeProcessor:
    @staticmethod
    def decode(ids):
        return " ".join(map(str, ids))


class FakeStages:
    """Study ``name`` says WORD ``lengths[name] - 1`` times, then EOS. Every call advances the
    clock by one second and is recorded: which sequences started, which stepped together and
    with which tokens."""

    eos_token_id = EOS
    processor = FakeProcessor()

    def __init__(self, lengths):
        self.lengths, self.now = lengths, 0.0
        self.names, self.produced = {}, {}
        self.started, self.steps, self.fed, self.ended = [], [], [], []

    def clock(self):
        return self.now

    def _next(self, sequences):
        self.now += 1.0
        logits = np.zeros((len(sequences), VOCAB), dtype=np.float32)
        for row, sequence in enumerate(sequences):
            self.produced[sequence] = self.produced.get(sequence, 0) + 1
            done = self.produced[sequence] >= self.lengths[self.names[sequence]]
            logits[row, EOS if done else WORD] = 1.0
        return logits

    def start_sequences(self, sequences, items):
        self.started.append(list(sequences))
        self.names.update({s: i.study_name for s, i in zip(sequences, items, strict=True)})
        return self._next(sequences)

    def step_sequences(self, sequences, tokens):
        self.steps.append(list(sequences))
        self.fed += tokens
        return self._next(sequences)

    def end_sequence(self, sequence):
        self.ended.append(sequence)


def _continuous(stages, items, concurrency, max_new_tokens=10, **kw):
    options = {"force_length": False, "return_logits": False, **kw}
    return run_continuous(
        stages, items, concurrency, max_new_tokens, clock=stages.clock, mode="fake", **options
    )


def _items(*names):
    return [SimpleNamespace(study_name=name) for name in names]


def test_a_study_joins_as_soon_as_one_ends_never_beyond_the_concurrency():
    stages = FakeStages({"short": 2, "long": 5, "mid": 3})
    items = _items("long", "short", "mid", "short", "long")
    run = _continuous(stages, items, 2)
    assert stages.started == [[0, 1], [2], [3], [4]]  # two at once, then one per ending
    assert max(len(s) for s in stages.steps) == 2
    # "short" (1) ends after one step; "mid" (2) joins before the next step, not after "long"
    assert stages.steps[:3] == [[0, 1], [0, 2], [0, 2]]
    assert sorted(stages.ended) == [0, 1, 2, 3, 4]
    assert [o.study_name for o in run.outputs] == [i.study_name for i in items]
    assert [len(o.token_ids) for o in run.outputs] == [5, 2, 3, 2, 5]
    assert all(o.token_ids[-1] == EOS for o in run.outputs)
    assert EOS not in stages.fed  # a finished sequence is never fed again
    # a latency runs from the study's admission to its last token, never its wait
    assert run.latencies_s[1] == 2.0  # admitted at t=0, prompt (1 s), one step (1 s)
    assert all(0 < latency <= run.seconds for latency in run.latencies_s)
    assert run.seconds == stages.now and run.mode == "fake" and run.batched


def test_a_forced_length_runs_every_sequence_to_the_end_and_keeps_its_logits():
    stages = FakeStages({"a": 2, "b": 3})
    run = _continuous(stages, _items("a", "b"), 2, 4, force_length=True, return_logits=True)
    assert [len(o.token_ids) for o in run.outputs] == [4, 4]
    assert run.outputs[0].token_ids == [WORD, EOS, EOS, EOS]  # fed on past its EOS
    logits = run.outputs[1].step_logits
    assert logits is not None and logits.shape == (4, VOCAB) and logits.dtype == torch.float32


def test_one_new_token_ends_every_study_at_its_prompt():
    stages = FakeStages({"a": 5})
    run = _continuous(stages, _items("a", "a", "a"), 2, 1)
    assert stages.steps == [] and stages.started == [[0, 1], [2]]
    assert [o.token_ids for o in run.outputs] == [[WORD]] * 3


@pytest.mark.parametrize(
    ("concurrency", "count", "tokens", "message"),
    [(0, 1, 4, "concurrency"), (2, 0, 4, "empty"), (2, 1, 0, "max_new_tokens")],
)
def test_bad_worklists_are_refused(concurrency, count, tokens, message):
    stages = FakeStages({"a": 2})
    with pytest.raises(ValueError, match=message):
        _continuous(stages, _items(*"a" * count), concurrency, tokens)
    with pytest.raises(ValueError, match=message):
        run_batched(object(), _items(*"a" * count), concurrency, tokens)


def test_a_runner_without_a_batched_path_runs_one_at_a_time():
    class Plain:
        def generate(self, inputs, max_new_tokens, *, force_length=False, return_logits=False):
            return type("G", (), {"token_ids": [1], "text": "x", "step_logits": None})()

    run = run_batched(Plain(), _items("a", "b", "c"), 2, 4)
    assert batch_mode(Plain()) == run.mode == ONE_AT_A_TIME and not run.batched
    assert [o.study_name for o in run.outputs] == ["a", "b", "c"]


# ---- every backend that runs here, on the toy model ---------------------------------------------

NEW_TOKENS = 40  # the toy's reports end at 16 to 29 tokens: the studies end at different steps
TORCH = ("eager", "eager-bf16", "compile", "compile-int8")
STATEFUL = ("openvino", "openvino-f32", "openvino-bf16", "openvino-int8")
PAGED = ("openvino-w8a8", "openvino-w8a8-int4")
COMPILED = ("compile", "compile-int8")
CONTINUOUS_PREFIX = "continuous batching"


@pytest.fixture(scope="module")
def toy():
    from pytest_cxrperf.model.loader import build_preset

    return build_preset("toy")


@pytest.fixture(scope="module")
def studies(toy):
    from pytest_cxrperf.model.study import load_studies

    return [toy.processor(study) for study in load_studies()]


@pytest.fixture(scope="module")
def prepared(toy, studies, tmp_path_factory):
    """``prepare(name) -> (backend, runner, single-study generations by study)``, each backend
    prepared once (the first test that asks for it pays)."""
    cache: dict[str, tuple] = {}
    ov_cache = tmp_path_factory.mktemp("ov-batching")

    def prepare(name):
        if name not in cache:
            cls = get_backend_class(name)
            backend = cls(cache_dir=ov_cache) if name.startswith("openvino") else cls()
            availability = backend.availability()
            if not availability.ok:
                pytest.skip(f"{name}: {availability.reason}")
            runner = backend.prepare(toy, studies[0])
            alone = {
                s.study_name: runner.generate(s, NEW_TOKENS, return_logits=True) for s in studies
            }
            cache[name] = (backend, runner, alone)
        return cache[name]

    return prepare


def _worklist(studies, size):
    """The shipped studies repeated to ``size``, the long ones not all at the start."""
    order = [0, 1, 2, 3, 2, 0, 3, 1, 1, 3, 0, 2, 3, 2, 1, 0]
    return [studies[i] for i in order[:size]]


def _levels():
    params = []
    for name in (*TORCH, *STATEFUL, *PAGED):
        # the compiled decoders recompile for each new batch shape: one level is enough for them
        for concurrency in (3,) if name in COMPILED else (2, 3, 4):
            params.append(pytest.param(name, concurrency, id=f"{name}-c{concurrency}"))
    return params


@pytest.mark.parametrize(("name", "concurrency"), _levels())
def test_a_worklist_says_what_each_study_says_alone(prepared, studies, name, concurrency):
    backend, runner, alone = prepared(name)
    tolerances = tolerances_for(backend.precision, name)
    items = _worklist(studies, 6 if concurrency == 3 else 8)  # 3: two full batches (compile)
    run = run_batched(runner, items, concurrency, NEW_TOKENS, return_logits=True)
    assert [o.study_name for o in run.outputs] == [i.study_name for i in items]
    for out in run.outputs:
        single = alone[out.study_name]
        tokens = compare_tokens(
            single.token_ids, out.token_ids, single.step_logits, tolerances.tie_margin
        )
        assert tokens.ok, f"{out.study_name}: {tokens.message}"
        shared = min(len(single.token_ids), len(out.token_ids))
        assert out.step_logits is not None and out.step_logits.dtype == torch.float32
        logits = compare_prefill_logits(
            single.step_logits[:shared], out.step_logits[:shared], tolerances.prefill_rel_err
        )
        assert logits.ok, f"{out.study_name}: {logits.message}"
        if out.token_ids == single.token_ids:
            assert out.text == single.text
    assert run.concurrency == concurrency
    assert all(0 < latency <= run.seconds for latency in run.latencies_s)
    assert run.tokens == sum(len(o.token_ids) for o in run.outputs)


@pytest.mark.parametrize("name", (*TORCH, *STATEFUL, *PAGED))
def test_each_backend_says_how_it_batches(prepared, studies, name):
    _, runner, _ = prepared(name)
    run = run_batched(runner, _worklist(studies, 2), 2, 2, force_length=True)
    assert run.mode == batch_mode(runner)
    if name in TORCH:
        assert run.mode == STATIC and run.batched
    elif name in STATEFUL:
        assert run.mode == STREAMS and "batch 1" in run.mode
        assert run.batched
    else:
        assert run.mode.startswith(CONTINUOUS_PREFIX) and run.batched
    assert [len(o.token_ids) for o in run.outputs] == [2, 2]


@pytest.mark.parametrize("name", ("openvino", "openvino-int8"))
def test_streams_run_the_studies_side_by_side_on_one_throughput_compilation(
    prepared, studies, name
):
    """Several studies in flight on the stateful IR: one infer request set (its own KV state)
    per study, over the IR compiled once more with PERFORMANCE_HINT=THROUGHPUT and the latency
    compilation's precisions; the latency runner itself is left as it was."""
    _, runner, alone = prepared(name)
    pool = runner.streams
    assert pool is not None
    latency_parts = dict(runner.compiled)
    run = run_batched(runner, _worklist(studies, 8), 4, NEW_TOKENS)
    assert [o.token_ids for o in run.outputs] == [
        alone[o.study_name].token_ids for o in run.outputs
    ]
    streams, runners = pool.runners(4)
    assert streams == streams_for(4, runner_threads(runner)) and len(runners) == 4
    assert len({id(r) for r in runners}) == 4 and runner not in runners
    decoder = runners[0].compiled["decoder"]
    assert decoder.get_property("PERFORMANCE_HINT") == "THROUGHPUT"
    assert int(decoder.get_property("NUM_STREAMS")) == streams
    latency_decoder = latency_parts["decoder"]
    for key in ("INFERENCE_PRECISION_HINT", "KV_CACHE_PRECISION"):
        assert str(decoder.get_property(key)) == str(latency_decoder.get_property(key))
    assert runner.compiled == latency_parts  # the latency runner keeps its one-stream parts
    assert latency_decoder.get_property("PERFORMANCE_HINT") == "LATENCY"
    again, _ = pool.runners(2)  # another level on these threads: the same compilation
    assert pool.runners(2)[1][0] is runners[0] and again == streams_for(2, runner_threads(runner))
    one = run_batched(runner, _worklist(studies, 2), 1, 2, force_length=True)
    assert one.mode == STREAMS and one.concurrency == 1  # one in flight: the latency runner


def runner_threads(runner):
    return runner.streams.threads


def test_streams_are_one_per_study_in_flight_up_to_the_threads():
    assert streams_for(4, 2) == 2 and streams_for(1, 2) == 1 and streams_for(3, 8) == 3
    import os

    cpus = os.cpu_count() or 1
    assert streams_for(4, None) == min(4, cpus) and streams_for(2, 0) == min(2, cpus)


@pytest.mark.parametrize("name", PAGED)
def test_continuous_batching_reuses_the_blocks_of_finished_studies(prepared, studies, name):
    """Studies of different lengths (natural ends, no forced length): a study joins in the
    call right after one ends, never more than ``concurrency`` are in flight, and the cache,
    shrunk to one block first, grows to what the sequences in flight need (every live block
    kept: the reports stay those of the single runs), not to what the worklist needs."""
    _, runner, alone = prepared(name)
    concurrency, items = 2, _worklist(studies, 16)
    calls = []
    start, step, end = runner.start_sequences, runner.step_sequences, runner.end_sequence

    def spy(kind, function):
        def recorded(sequences, *rest):
            calls.append((kind, list(sequences)))
            return function(sequences, *rest)

        return recorded

    runner._resize(1, 0)  # one block: the run has to grow the cache while sequences live in it
    runner.start_sequences = spy("start", start)
    runner.step_sequences = spy("step", step)
    runner.end_sequence = lambda sequence: (calls.append(("end", [sequence])), end(sequence))
    try:
        run = run_batched(runner, items, concurrency, NEW_TOKENS)
    finally:
        del runner.start_sequences, runner.step_sequences, runner.end_sequence
    for out in run.outputs:
        assert out.token_ids == alone[out.study_name].token_ids, out.study_name
    in_flight, started, ended_since_last_call = 0, 0, 0
    for kind, sequences in calls:
        if kind == "end":
            in_flight -= 1
            ended_since_last_call += 1
            continue
        if ended_since_last_call and started < len(items):
            assert kind == "start", "a study waits while a place is free"
            assert len(sequences) == ended_since_last_call  # every free place taken at once
        if kind == "start":
            in_flight += len(sequences)
            started += len(sequences)
        else:  # a step runs every sequence in flight, fewer than the concurrency only at the end
            assert len(sequences) == in_flight
            assert in_flight == concurrency or started == len(items)
        assert in_flight <= concurrency
        ended_since_last_call = 0
    assert in_flight == 0 and started == len(items)
    longest = max(s.prompt_length for s in studies) + NEW_TOKENS
    per_sequence = blocks_for(longest, runner.block_size)
    all_sequences = sum(blocks_for(s.prompt_length + 16, runner.block_size) for s in items)
    assert runner.capacity_blocks <= 2 * concurrency * per_sequence < all_sequences


def test_ipex_llm_runs_one_at_a_time_without_ipex(toy):
    """ipex-llm's decoder takes IPEX's own cache tuples: its runner must not claim the static
    batched path (IPEX itself is not needed to see that: it lives in ``tox -e ipex``)."""
    from pytest_cxrperf.backends.batched_torch import supports_batching
    from pytest_cxrperf.backends.batching import has_batched_path
    from pytest_cxrperf.backends.ipex import IpexLlmRunner

    runner = IpexLlmRunner(toy.model, toy.processor)
    assert not supports_batching(runner) and not has_batched_path(runner)
    assert batch_mode(runner).startswith("one at a time") and "ipex.llm" in batch_mode(runner)
