"""Block-causal attention, for tracing the decoder that runs a whole prompt (OpenVINO's prefill IR).

A causal prompt of ``L`` tokens needs only the attention scores on and below the diagonal, but one
attention call over the whole prompt computes all ``L x L`` of them: the OpenVINO CPU plugin runs
it as one fused Snippets MHA subgraph, which does not skip masked blocks. Cut into ``n`` blocks of
queries, where block ``i`` attends to the keys up to its own last query, each block is still one
fused MHA and the work is ``(n + 1) / 2n`` of the square (3/4 for two blocks). The results are the
same up to rounding: every query sees the same keys under the same mask.

Measured on ``bench`` (1,401-token prompt, 2 threads, the median of per-round changes, README
"What won, what lost"): with no past inputs, two blocks took prefill from -4.8 % to -5.6 % on the
plugin's bf16 path (25 rounds), and the W8A8 prompt 3.6 % below the old form (20 rounds); three and
four blocks did no better than two. A small gain: the slices and reorders the blocks add eat part
of the saved scores.

Only the prompt IR is traced this way. A decode step has one query: blocking it would split
nothing, and the stateful decoder's attention must stay the pattern the plugin fuses with its KV
cache (see :mod:`.openvino_export`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import torch
from torch import nn

PROMPT_BLOCKS = 2  # query blocks of the prompt IR's attention (part of the export cache key)
_NAME = "cxrperf_block_causal"


def block_causal_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    *,
    blocks: int = PROMPT_BLOCKS,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: ``query [b, heads, q, d]``, ``key``/``value``
    ``[b, kv_heads, past + q, d]``, ``attention_mask [b, 1, q, past + q]`` (additive or boolean)
    -> ``([b, q, heads, d], None)``.

    Without a mask (transformers skips it where it can) the call is passed whole to SDPA, as
    transformers' own ``sdpa`` implementation would run it."""
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    if attention_mask is None or blocks < 2:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
    groups = int(getattr(module, "num_key_value_groups", 1))
    if groups > 1:
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    queries = query.shape[2]  # traced as a graph value: the IR keeps the prompt length dynamic
    past = key.shape[2] - queries
    outputs = []
    for i in range(blocks):
        start, end = queries * i // blocks, queries * (i + 1) // blocks
        last = i == blocks - 1  # attends to every key: no slice (each one is a copy in the IR)
        outputs.append(
            torch.nn.functional.scaled_dot_product_attention(
                query[:, :, start:end],
                key if last else key[:, :, : past + end],
                value if last else value[:, :, : past + end],
                attn_mask=attention_mask[:, :, start:]
                if last
                else attention_mask[:, :, start:end, : past + end],
                scale=scale,
            )
        )
    return torch.cat(outputs, dim=2).transpose(1, 2).contiguous(), None


@contextmanager
def block_causal(language_model: nn.Module, blocks: int = PROMPT_BLOCKS) -> Iterator[None]:
    """While inside, ``language_model`` runs :func:`block_causal_attention` in ``blocks`` query
    blocks (for a trace)."""
    from transformers import AttentionInterface

    AttentionInterface.register(_NAME, partial(block_causal_attention, blocks=blocks))
    try:  # transformers >= 4.53 picks the mask builder by the same name
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        AttentionMaskInterface.register(_NAME, sdpa_mask)
    except ImportError:
        pass
    config: Any = language_model.config
    before = config._attn_implementation
    config._attn_implementation = _NAME
    try:
        yield
    finally:
        config._attn_implementation = before
