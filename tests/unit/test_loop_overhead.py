"""The greedy loop's own cost per token, and the OpenVINO decode step's embedding cache."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
import torch

from pytest_cxrperf.backends.greedy import GreedyLoop
from pytest_cxrperf.model.loader import build_preset
from pytest_cxrperf.model.study import load_studies


class _NoModel(GreedyLoop):
    """Every stage a no-op: what is left is the loop (argmax, timing, bookkeeping)."""

    def __init__(self, processor, vocab: int) -> None:
        self.processor = processor
        self.eos_token_id = -1
        self.logits = torch.zeros(vocab)

    def _encode(self, pixel_values):
        return None

    def _embed_prompt(self, input_ids, image_embeds):
        return None

    def _prefill(self, embeds):
        return self.logits, 0

    def _step(self, token, state):
        return self.logits, state + 1


def test_loop_overhead_per_token_is_microseconds():
    toy = build_preset("toy")
    inputs = toy.processor(load_studies()[0])
    loop = _NoModel(toy.processor, toy.config.vocab_size)
    out = loop.generate(inputs, 64, force_length=True)
    assert len(out.token_ids) == 64
    # ~3 us here on a busy 2-core machine; a decode step of the toy model is ~400 us
    assert statistics.median(out.timings.decode_s) < 1e-3


def test_openvino_step_reuses_token_embeddings(tmp_path):
    pytest.importorskip("openvino")
    from pytest_cxrperf.backends.openvino import OpenVINOF32Backend

    toy = build_preset("toy")
    inputs = toy.processor(load_studies()[0])
    runner = OpenVINOF32Backend(cache_dir=tmp_path).prepare(toy, inputs)
    out = runner.generate(inputs, 16, force_length=True)  # type: ignore[attr-defined]
    cache = runner._token_embeds  # type: ignore[attr-defined]
    # every fed token (all but the last generated one) is cached, with the embed IR's values
    assert set(out.token_ids[:-1]) <= set(cache)
    for token, row in cache.items():
        fresh = runner._embed_ids(np.array([[token]], dtype=np.int64))  # type: ignore[attr-defined]
        np.testing.assert_array_equal(row, fresh)
    again = runner.generate(inputs, 16, force_length=True)  # type: ignore[attr-defined]
    assert again.token_ids == out.token_ids
