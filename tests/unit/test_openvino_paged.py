"""The paged runner on the tiny preset: PagedAttention over one shared KV cache, in f32 so that it
must reproduce eager fp32 (tokens and logits), also when its cache grows mid-generation.

The quantized backends that use it are checked against eager on the toy model in
test_openvino_quantized.py; here the plumbing (block table, cache growth, flattened logits) is
isolated from quantization error.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("openvino")

import openvino as ov

from pytest_cxrperf.backends import openvino_paged
from pytest_cxrperf.backends.openvino_export import (
    convert_decoder,
    convert_embed,
    convert_vision,
)
from pytest_cxrperf.backends.openvino_paged import PagedRunner, to_paged
from pytest_cxrperf.backends.torch_runner import TorchRunner
from pytest_cxrperf.model.loader import build_preset
from pytest_cxrperf.model.study import load_studies

NEW_TOKENS = 16
F32 = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32", "INFERENCE_NUM_THREADS": 2}


@pytest.fixture(scope="module")
def tiny():
    return build_preset("tiny")


@pytest.fixture(scope="module")
def studies(tiny):
    return [tiny.processor(study) for study in load_studies()]


@pytest.fixture(scope="module")
def eager(tiny):
    return TorchRunner(tiny.model, tiny.processor)


@pytest.fixture(scope="module")
def parts(tiny):
    """The tiny model's parts compiled in f32, the decoder in its paged form."""
    core = ov.Core()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = {
            "vision": convert_vision(tiny.model, tiny.model.config.image_size),
            "embed": convert_embed(tiny.model),
            "decoder": to_paged(convert_decoder(tiny.model, paged=True)),
        }
    return {name: core.compile_model(m, "CPU", F32) for name, m in models.items()}


def _runner(parts, tiny) -> PagedRunner:
    return PagedRunner(
        parts["vision"], parts["embed"], parts["decoder"], parts["decoder"], tiny.processor
    )


def _rel_l2(ref: torch.Tensor, out: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(out - ref) / torch.linalg.vector_norm(ref))


def test_paged_f32_matches_eager_token_for_token(parts, tiny, studies, eager):
    runner = _runner(parts, tiny)
    for inputs in studies:
        ref = eager.generate(inputs, NEW_TOKENS, force_length=True, return_logits=True)
        out = runner.generate(inputs, NEW_TOKENS, force_length=True, return_logits=True)
        assert out.token_ids == ref.token_ids, inputs.study_name
        assert out.step_logits is not None and ref.step_logits is not None
        assert out.step_logits.shape == ref.step_logits.shape
        assert _rel_l2(ref.step_logits, out.step_logits) < 1e-4  # the gate's fp32 tolerance


def test_cache_grows_mid_generation_and_keeps_what_it_held(
    parts, tiny, studies, eager, monkeypatch
):
    monkeypatch.setattr(openvino_paged, "HEADROOM_TOKENS", 0)  # room for the prompt only
    runner = _runner(parts, tiny)
    inputs = studies[0]
    new_tokens = 3 * runner.block_size  # crosses several block boundaries
    ref = eager.generate(inputs, new_tokens, force_length=True, return_logits=True)
    out = runner.generate(inputs, new_tokens, force_length=True, return_logits=True)
    prompt_blocks = -(-inputs.prompt_length // runner.block_size)
    assert runner.capacity_blocks > prompt_blocks  # it did grow
    assert out.token_ids == ref.token_ids
    assert _rel_l2(ref.step_logits, out.step_logits) < 1e-4
    # a second, shorter generation reuses the grown cache from the start
    again = runner.generate(inputs, NEW_TOKENS, force_length=True)
    assert again.token_ids == ref.token_ids[:NEW_TOKENS]


def test_score_matches_eager_at_every_target(parts, tiny, studies, eager):
    runner = _runner(parts, tiny)
    for inputs in studies[:2]:
        targets = eager.generate(inputs, NEW_TOKENS, force_length=True).token_ids
        ref, out = eager.score(inputs, targets), runner.score(inputs, targets)
        assert out.shape == ref.shape == (len(targets), ref.shape[1])
        assert _rel_l2(ref, out) < 1e-4
        assert torch.equal(out.argmax(-1), torch.tensor(targets))
    assert runner.score(studies[0], []).shape == eager.score(studies[0], []).shape


def test_to_paged_replaces_every_attention_with_a_paged_one(tiny):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = to_paged(convert_decoder(tiny.model, paged=True))
    types = [op.get_type_name() for op in model.get_ops()]
    layers = tiny.model.language_model.config.num_hidden_layers
    assert types.count("PagedAttentionExtension") == layers
    assert "ScaledDotProductAttention" not in types and "ReadValue" not in types
    names = {port.get_any_name() for port in model.inputs}
    assert {f"key_cache.{i}" for i in range(layers)} <= names
    assert {"past_lens", "block_indices", "subsequence_begins"} <= names


def test_refuses_a_decoder_that_is_not_paged(parts, tiny):
    core = ov.Core()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stateful = core.compile_model(convert_decoder(tiny.model), "CPU", F32)
    with pytest.raises(ValueError, match="to_paged"):
        PagedRunner(parts["vision"], parts["embed"], stateful, stateful, tiny.processor)
    with pytest.raises(ValueError, match="same cache"):
        PagedRunner(parts["vision"], parts["embed"], stateful, parts["decoder"], tiny.processor)


def test_feed_describes_one_sequence_of_blocks(parts, tiny):
    runner = _runner(parts, tiny)
    block = runner.block_size
    embeds = np.zeros((1, 3, 8), dtype=np.float32)
    feed = runner._feed(embeds, past=2 * block - 1, logits_indices=np.array([2]))
    assert feed["inputs_embeds"].shape == (3, 8)
    assert feed["position_ids"].tolist() == [2 * block - 1, 2 * block, 2 * block + 1]
    assert feed["past_lens"].tolist() == [2 * block - 1]
    assert feed["subsequence_begins"].tolist() == [0, 3]
    assert feed["block_indices_begins"].tolist() == [0, 3]  # 2 * block + 2 tokens: 3 blocks
    assert feed["block_indices"].tolist() == [0, 1, 2]
    assert int(feed["max_context_len"]) == 2 * block + 2
