"""Block-causal attention computes what one attention call over the whole prompt computes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("transformers")

from transformers.integrations.sdpa_attention import sdpa_attention_forward

from pytest_cxrperf.backends.prompt_attention import (
    block_causal,
    block_causal_attention,
)


class _Attention(nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.num_key_value_groups = groups
        self.is_causal = True


def _causal_mask(queries: int, past: int, padded: int = 0) -> torch.Tensor:
    """Additive mask [1, 1, q, past + q]: query i sees keys up to past + i, not padded ones."""
    keys = past + queries
    allowed = torch.arange(keys)[None, :] <= past + torch.arange(queries)[:, None]
    allowed[:, :padded] = False
    mask = torch.zeros(queries, keys).masked_fill(~allowed, torch.finfo(torch.float32).min)
    return mask[None, None]


@pytest.mark.parametrize(
    ("queries", "past", "heads", "kv_heads", "blocks"),
    [(7, 0, 4, 4, 2), (9, 3, 4, 2, 2), (10, 0, 2, 1, 3), (5, 2, 2, 2, 4), (1, 6, 2, 2, 2)],
)
def test_blocks_match_one_call(queries, past, heads, kv_heads, blocks):
    torch.manual_seed(queries * 10 + blocks)
    query = torch.randn(1, heads, queries, 8)
    key = torch.randn(1, kv_heads, past + queries, 8)
    value = torch.randn(1, kv_heads, past + queries, 8)
    module = _Attention(heads // kv_heads)
    mask = _causal_mask(queries, past, padded=1 if past else 0)
    expected, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.3)
    got, weights = block_causal_attention(
        module, query, key, value, mask, blocks=blocks, scaling=0.3
    )
    assert weights is None
    assert got.shape == expected.shape == (1, queries, heads, 8)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_without_a_mask_the_call_is_passed_whole():
    module = _Attention(1)
    query, key, value = (torch.randn(1, 2, 6, 8) for _ in range(3))
    expected, _ = sdpa_attention_forward(module, query, key, value, None)
    got, _ = block_causal_attention(module, query, key, value, None)
    torch.testing.assert_close(got, expected)


def test_the_context_switches_the_model_and_back(monkeypatch):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        vocab_size=50,
    )
    model = LlamaForCausalLM(config).eval()
    before = model.config._attn_implementation
    ids = torch.randint(0, 50, (1, 12))
    padded = torch.ones(1, 12, dtype=torch.long)
    padded[0, 0] = 0  # a padded prompt: transformers builds the mask instead of skipping it
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(args[0].shape[2])  # queries per call
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting)
    with torch.no_grad():
        expected = model(ids, attention_mask=padded).logits
        assert calls == [12]
        with block_causal(model, blocks=3):
            assert model.config._attn_implementation != before
            got = model(ids, attention_mask=padded).logits
    assert calls == [12, 4, 4, 4]  # one layer: three blocks of four queries
    assert model.config._attn_implementation == before
    torch.testing.assert_close(got[:, 1:], expected[:, 1:], rtol=1e-5, atol=1e-5)
