"""Export a :class:`CXRReportModel` to OpenVINO IR in three parts (optimum-intel's VLM layout).

* ``vision.xml``: pixels ``[n, 3, H, W]`` -> image-token embeddings ``[n, T, D]`` (encoder and
  projector);
* ``embed.xml``: token ids ``[1, L]`` -> token embeddings ``[1, L, D]``;
* ``decoder.xml``: a *stateful* LLM. Inputs ``inputs_embeds [1, S, D]``, ``attention_mask
  [1, P+S]`` (2-D: the model builds its causal mask in the graph), ``position_ids [1, S]``,
  ``logits_indices [K]`` (the positions whose logits are wanted) and ``beam_idx [1]``; output
  ``logits [1, K, V]``. The KV cache lives in OpenVINO variables, one per layer and key/value
  (``past_key_values.{i}.{key,value}`` -> ``present.{i}.{key,value}``), so a decode step passes
  one embedding and nothing else.

Why not optimum-intel: it pins transformers and openvino to older releases than this project
supports (transformers 5.x renamed the cache argument and rewrote the cache classes) and brings its
whole exporter stack for three ``convert_model`` calls. We reproduce the graph edits of its
``patch_stateful`` that matter on CPU:

* ``fuse_cache_reorder``: ``Gather(past, beam_idx)`` in front of every cache read. The CPU
  plugin's stateful-SDPA fusion matches ``ReadValue -> Gather -> Concat -> SDPA`` and turns it into
  one ``ScaledDotProductAttentionWithKVCache`` node that appends to its own cache buffer (in the
  KV-cache precision). Without the gather the cache is concatenated, i.e. copied, every step.
* ``build_state_initializer``: every ``ReadValue`` starts from ``zeros[batch, heads, 0, head_dim]``
  computed from the input's shape; without it the variables have no defined initial shape.

Why ``logits_indices`` and not ``logits_to_keep=1``: :meth:`OpenVINORunner.score` needs logits at
every target position in one pass while prefill needs only the last one. The vocabulary projection
over a 1,400-token prompt would cost ~15 % of prefill for nothing, so the positions are an input
(a ``Gather`` before ``lm_head``; transformers' ``logits_to_keep`` accepts an index tensor) and one
IR serves both.

Why prompts run on a separate stateless IR, ``prefill.xml`` (:func:`convert_prefill`): measured
on a 2-core AVX512-BF16 CPU without AMX (OpenVINO 2026.4), the fused KV-cache SDPA node computes a
1,400-token prompt ~4x slower than a stateless graph, where the CPU plugin tokenizes attention into
a Snippets MHA subgraph (0.43 s against 0.09 s per layer in bf16). So the export traces the decoder
twice: stateful, for decode steps, and stateless for whole prompts (prefill and scoring), whose
present KV is then written into the stateful model's variables. The prompt IR has no past inputs
(a prompt starts from an empty cache: :func:`prompt_only`) and computes causal attention in query
blocks (:mod:`.prompt_attention`). The cost is a second copy of the decoder's weights.

The quantized modes (``PAGED_MODES``) go one step further (:mod:`.openvino_paged`): their decode
IR and a *stateful* W8A8 prompt IR (:func:`convert_paged_prefill`) are both turned into
PagedAttention at load time and share one KV cache owned by the runner, so the prompt writes the
cache the decode steps read and nothing is handed over. That form needs a dynamic batch axis and
logits indexed over the flattened tokens (:class:`_DecoderForExport` with ``paged``).

Traps handled while tracing (transformers 5.x): ``DynamicCache(ddp_cache_data)`` builds each layer
by concatenating onto an empty 1-D tensor, which the PyTorch frontend cannot convert (``aten::cat``
of a rank-1 empty input), so the cache layers are filled directly; and the trace uses a non-empty
past and a multi-token query so that transformers materialises the causal mask (it skips the mask
or packs GQA heads only for ``q_len == 1`` or an empty cache, choices a trace would freeze).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from .openvino_cache import CacheEntry, cache_key, cache_root, ensure_entry, export_versions
from .prompt_attention import PROMPT_BLOCKS
from .torch_runner import cache_argument

if TYPE_CHECKING:
    import openvino as ov

    from ..model.architecture import CXRReportModel
    from ..model.loader import ReferenceModel

VISION_FILE, EMBED_FILE, DECODER_FILE = "vision.xml", "embed.xml", "decoder.xml"
PREFILL_FILE = "prefill.xml"  # the decoder for whole prompts: prefill and scoring
IR_FILES = (VISION_FILE, EMBED_FILE, DECODER_FILE, PREFILL_FILE)
EXPORTER_VERSION = 3  # bump when a change here changes the IR: old cache entries stop matching
DECODER_INPUTS = ("inputs_embeds", "attention_mask", "position_ids", "logits_indices")
_TRACE_PAST = 3  # cache length used while tracing (any non-zero value: shapes stay symbolic)
_TRACE_NEW = 5


@dataclass(frozen=True)
class DecoderLayout:
    """What the runner needs to know about the exported decoder."""

    layers: int
    kv_heads: int
    head_dim: int
    hidden: int


def decoder_layout(model: CXRReportModel) -> DecoderLayout:
    cfg: Any = model.language_model.config
    heads = int(cfg.num_attention_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
    return DecoderLayout(
        layers=int(cfg.num_hidden_layers),
        kv_heads=int(getattr(cfg, "num_key_value_heads", None) or heads),
        head_dim=head_dim,
        hidden=int(cfg.hidden_size),
    )


def _prefilled_cache(past: Sequence[torch.Tensor]) -> Any:
    """A DynamicCache holding ``past`` (k0, v0, k1, v1, ...) without concatenating onto empties."""
    from transformers import DynamicCache

    pairs = list(zip(past[0::2], past[1::2], strict=True))
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:  # transformers < 4.56: legacy tuples are stored as given
        legacy: Any = DynamicCache
        return legacy.from_legacy_cache(tuple(pairs))
    cache = DynamicCache()
    for keys, values in pairs:
        layer: Any = DynamicLayer()
        # what lazy_initialization sets, minus its empty placeholder tensors (and its signature
        # changed between releases)
        layer.dtype, layer.device = keys.dtype, keys.device
        layer.keys, layer.values = keys, values
        layer.is_initialized = True
        cache.layers.append(layer)
    return cache


def _cache_tensors(cache: Any) -> list[torch.Tensor]:
    if hasattr(cache, "layers"):
        return [t for layer in cache.layers for t in (layer.keys, layer.values)]
    return [t for pair in cache.to_legacy_cache() for t in pair]  # transformers < 4.56


class _DecoderForExport(nn.Module):
    """Flat-tensor signature around the causal LM, traced by ``openvino.convert_model``.

    ``paged``: ``logits_indices`` index the flattened batch*sequence tokens, not the sequence
    axis. The PagedAttention transformation turns a ``[batch, seq]`` model into one over
    ``[tokens, 1]`` (every token its own batch row), where a gather along the sequence axis would
    index a length-1 axis; for ``batch == 1`` both forms give the same logits."""

    def __init__(self, language_model: nn.Module, paged: bool = False) -> None:
        super().__init__()
        self.language_model = language_model
        self.cache_kw = cache_argument(language_model)
        self.paged = paged

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        logits_indices: torch.Tensor,
        *past: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        cache = _prefilled_cache(past)
        language_model: Any = self.language_model
        inputs: dict[str, Any] = {
            "inputs_embeds": inputs_embeds,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "use_cache": True,
            self.cache_kw: cache,
        }
        if self.paged:
            hidden = language_model.get_decoder()(**inputs).last_hidden_state
            hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, logits_indices)
            logits = language_model.get_output_embeddings()(hidden)[None]
        else:
            logits = language_model(**inputs, logits_to_keep=logits_indices).logits
        return (logits, *_cache_tensors(cache))


class _EmbedForExport(nn.Module):
    def __init__(self, embedding: nn.Module) -> None:
        super().__init__()
        self.embedding = embedding

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(input_ids)


def convert_vision(model: CXRReportModel, image_size: int) -> ov.Model:
    import openvino as ov

    example = torch.zeros(1, 3, image_size, image_size)
    with torch.no_grad():
        ov_model = ov.convert_model(
            model.vision.eval(),
            example_input=(example,),
            input=[ov.PartialShape([-1, 3, image_size, image_size])],
        )
    ov_model.inputs[0].get_tensor().set_names({"pixel_values"})
    ov_model.outputs[0].get_tensor().set_names({"image_embeds"})
    return ov_model


def convert_embed(model: CXRReportModel) -> ov.Model:
    import openvino as ov

    language_model: Any = model.language_model
    embedding = language_model.get_input_embeddings()
    with torch.no_grad():
        ov_model = ov.convert_model(
            _EmbedForExport(embedding).eval(),
            example_input=(torch.ones(1, 4, dtype=torch.long),),
            input=[(ov.PartialShape([1, -1]), ov.Type.i64)],
        )
    ov_model.inputs[0].get_tensor().set_names({"input_ids"})
    ov_model.outputs[0].get_tensor().set_names({"inputs_embeds"})
    return ov_model


def convert_decoder(model: CXRReportModel, paged: bool = False) -> ov.Model:
    """Trace the decoder with an explicit cache, then make the cache OpenVINO state.

    ``paged``: the form :func:`.openvino_paged.to_paged` turns into PagedAttention (a dynamic
    batch axis and logits indexed over the flattened tokens)."""
    ov_model, kv_in, kv_out = _trace_decoder(model, paged=paged)
    make_stateful(ov_model, kv_in, kv_out)
    return ov_model


def convert_paged_prefill(model: CXRReportModel, feeds: list[dict[str, np.ndarray]]) -> ov.Model:
    """The paged decoder W8A8-quantized for whole prompts, calibrated on ``feeds`` (prompts from
    an empty cache), then made stateful so that :func:`.openvino_paged.to_paged` applies.

    Its attention stays unquantized: the PagedAttention node replaces it, and a FakeQuantize
    between the cache and the attention would also hide the pattern the transformation matches."""
    ov_model, kv_in, kv_out = _trace_decoder(model, paged=True)
    empties = empty_past(ov_model, batch=1)
    quantized = _quantize(
        ov_model, [{**feed, **empties} for feed in feeds], ignore=("ScaledDotProductAttention",)
    )
    make_stateful(quantized, kv_in, kv_out)
    return quantized


def convert_prefill(model: CXRReportModel, blocks: int = PROMPT_BLOCKS) -> ov.Model:
    """The decoder for a whole prompt: stateless, its attention in ``blocks`` causal query blocks
    (:mod:`.prompt_attention`), its past inputs fixed empty (:func:`prompt_only`)."""
    from .prompt_attention import block_causal

    with block_causal(model.language_model, blocks):
        ov_model, _, _ = _trace_decoder(model)
    return prompt_only(ov_model)


def _trace_decoder(
    model: CXRReportModel, paged: bool = False
) -> tuple[ov.Model, list[str], list[str]]:
    """The decoder traced with past inputs and present outputs, named as optimum-intel names
    them; also the past input and present output names, layer by layer. ``paged``: a dynamic
    batch axis and logits over the flattened tokens (:class:`_DecoderForExport`); else batch 1."""
    import openvino as ov

    batch = -1 if paged else 1

    layout = decoder_layout(model)
    past_shape = (1, layout.kv_heads, _TRACE_PAST, layout.head_dim)
    past = [torch.randn(past_shape) for _ in range(2 * layout.layers)]
    total = _TRACE_PAST + _TRACE_NEW
    example = (
        torch.randn(1, _TRACE_NEW, layout.hidden),
        torch.ones(1, total, dtype=torch.long),
        torch.arange(_TRACE_PAST, total).unsqueeze(0),
        torch.tensor([_TRACE_NEW - 1], dtype=torch.long),
        *past,
    )
    kv_shape = ov.PartialShape([batch, layout.kv_heads, -1, layout.head_dim])
    shapes = [
        (ov.PartialShape([batch, -1, layout.hidden]), ov.Type.f32),
        (ov.PartialShape([batch, -1]), ov.Type.i64),
        (ov.PartialShape([batch, -1]), ov.Type.i64),
        (ov.PartialShape([-1]), ov.Type.i64),
        *[(kv_shape, ov.Type.f32)] * len(past),
    ]
    with torch.no_grad():
        ov_model = ov.convert_model(
            _DecoderForExport(model.language_model, paged).eval(),
            example_input=example,
            input=shapes,
        )
    kv_in, kv_out = [], []
    for i in range(layout.layers):
        for j, kind in enumerate(("key", "value")):
            kv_in.append(f"past_key_values.{i}.{kind}")
            kv_out.append(f"present.{i}.{kind}")
            ov_model.inputs[len(DECODER_INPUTS) + 2 * i + j].get_tensor().set_names({kv_in[-1]})
            ov_model.outputs[1 + 2 * i + j].get_tensor().set_names({kv_out[-1]})
    for port, name in zip(ov_model.inputs, DECODER_INPUTS, strict=False):
        port.get_tensor().set_names({name})
    ov_model.outputs[0].get_tensor().set_names({"logits"})
    return ov_model, kv_in, kv_out


def make_stateful(ov_model: ov.Model, kv_inputs: list[str], kv_outputs: list[str]) -> None:
    """Cache inputs/outputs -> ReadValue/Assign pairs, with a beam gather and zero initialisers."""
    import openvino as ov
    from openvino import opset13
    from openvino._offline_transformations import apply_make_stateful_transformation

    # fuse_cache_reorder: Gather(past, beam_idx, axis=0) in front of every cache consumer
    batch_axis = ov_model.input("inputs_embeds").get_partial_shape()[0]
    beam_idx = opset13.parameter(ov.PartialShape([batch_axis]), ov.Type.i32, name="beam_idx")
    beam_idx.output(0).get_tensor().set_names({"beam_idx"})
    ov_model.add_parameters([beam_idx])
    for name in kv_inputs:
        port = ov_model.input(name)
        consumers = port.get_target_inputs()
        gather = opset13.gather(port, beam_idx, opset13.constant(0))
        for consumer in consumers:
            consumer.replace_source_output(gather.output(0))
    ov_model.validate_nodes_and_infer_types()
    apply_make_stateful_transformation(ov_model, dict(zip(kv_inputs, kv_outputs, strict=True)))
    # build_state_initializer: each variable starts as zeros[batch, heads, 0, head_dim]
    embeds = ov_model.input("inputs_embeds")
    batch = opset13.gather(
        opset13.shape_of(embeds, output_type="i64"), opset13.constant([0]), opset13.constant(0)
    )
    for op in ov_model.get_ops():
        if op.get_type_name() != "ReadValue":
            continue
        dims: list[Any] = [d.get_min_length() for d in op.get_output_partial_shape(0)]
        dims[0] = batch
        parts = [
            d if not isinstance(d, int) else opset13.constant(np.array([d], dtype=np.int64))
            for d in dims
        ]
        zero = opset13.constant(np.array(0.0, dtype=np.float32))
        zero = opset13.convert(zero, op.get_output_element_type(0))
        op.set_arguments([opset13.broadcast(zero, opset13.concat(parts, axis=0))])
    ov_model.validate_nodes_and_infer_types()


WEIGHT_MODES = ("f32", "int8", "int4", "w8a8", "w8a8-int4")
QUANTIZED_MODES = ("w8a8", "w8a8-int4")  # activations quantized too: calibrated
# run on PagedAttention (:mod:`.openvino_paged`): their W8A8 prompt and int4/int8 decode IRs share
# one KV cache, so the prompt's cache is never handed over
PAGED_MODES = QUANTIZED_MODES
INT4_GROUP_SIZE = 64  # divides every projection width of the presets (128 .. 11008)
INT4_RATIO = 1.0  # share of decoder layers in int4 (the rest, and embeddings/lm_head, int8)
CALIBRATION = "package phantom studies"  # what nncf.quantize sees (part of the cache key)


def export_settings(weights: str) -> dict[str, object]:
    """Everything about an export besides the weights and library versions (part of the key)."""
    settings: dict[str, object] = {
        "exporter": EXPORTER_VERSION,
        "parts": list(IR_FILES),
        "decoder_inputs": [*DECODER_INPUTS, "beam_idx"],
        "stateful": True,
        "prefill": f"stateless, no past, causal attention in {PROMPT_BLOCKS} query blocks",
        "weights": weights,
    }
    if weights in PAGED_MODES:
        settings["prefill"] = "stateful, attention unquantized, run as PagedAttention"
        settings["decoder"] = "paged form: dynamic batch, logits indexed over flattened tokens"
    if weights == "int8":
        settings["compression"] = "nncf.compress_weights INT8_ASYM"
    elif weights == "int4":
        settings["compression"] = (
            f"vision/embed INT8_ASYM; decoder INT4_ASYM group {INT4_GROUP_SIZE} ratio {INT4_RATIO}"
        )
    elif weights in QUANTIZED_MODES:
        decode = "INT8_ASYM" if weights == "w8a8" else f"INT4_ASYM group {INT4_GROUP_SIZE}"
        settings["compression"] = (
            f"vision and prefill: nncf.quantize TRANSFORMER (W8A8); embed: INT8_ASYM; "
            f"decode: {decode}"
        )
        settings["calibration"] = CALIBRATION
    return settings


@dataclass(frozen=True)
class Calibration:
    """Inputs ``nncf.quantize`` sees: one feed per image for vision, one prompt per study."""

    vision: list[dict[str, np.ndarray]]
    prefill: list[dict[str, np.ndarray]]


def calibration_feeds(reference: ReferenceModel) -> Calibration:
    """Vision and prefill feeds from the package's phantom studies, through the eager model."""
    from ..model.study import load_studies

    model = reference.model
    vision, prefill = [], []
    with torch.no_grad():
        for study in load_studies():
            inputs = reference.processor(study)
            pixels = inputs.pixel_values.float()
            vision += [{"pixel_values": image[None].numpy().copy()} for image in pixels]
            features = model.vision(pixels)
            embeds = model.embed_prompt(inputs.input_ids, features.reshape(-1, features.shape[-1]))
            length = embeds.shape[1]
            feed = {
                "inputs_embeds": embeds.float().numpy().copy(),
                "attention_mask": np.ones((1, length), dtype=np.int64),
                "position_ids": np.arange(length, dtype=np.int64)[None, :],
                "logits_indices": np.array([length - 1], dtype=np.int64),
            }
            prefill.append(feed)
    return Calibration(vision, prefill)


def export_parts(
    model: CXRReportModel,
    folder: Path,
    weights: str,
    calibration: Callable[[], Calibration] | None = None,
) -> None:
    """Convert the four parts and save them under ``folder``, compressed as ``weights`` says.

    The W8A8 modes quantize vision and prefill and need ``calibration`` (called only here, on a
    cache miss: it runs the eager model over the calibration studies)."""
    import openvino as ov

    if weights not in WEIGHT_MODES:
        raise ValueError(f"weights must be one of {WEIGHT_MODES}, got {weights!r}")
    if weights in QUANTIZED_MODES and calibration is None:
        raise ValueError(f"{weights} needs calibration feeds")
    model.eval()
    with warnings.catch_warnings():
        # the tracer warns about every Python-level shape check in transformers; the ones that
        # matter (mask skipping, GQA packing) are decided by the trace inputs, see the docstring
        warnings.simplefilter("ignore")
        paged = weights in PAGED_MODES
        parts = {
            VISION_FILE: convert_vision(model, model.config.image_size),
            EMBED_FILE: convert_embed(model),
            DECODER_FILE: convert_decoder(model, paged=paged),
        }
        if weights in QUANTIZED_MODES:
            assert calibration is not None
            feeds = calibration()
            parts[VISION_FILE] = _quantize(parts[VISION_FILE], feeds.vision)
            parts[PREFILL_FILE] = convert_paged_prefill(model, feeds.prefill)
        else:
            parts[PREFILL_FILE] = convert_prefill(model)
    for name, ov_model in parts.items():
        mode = weight_compression(weights, name)
        if mode is not None:
            ov_model = _compress(ov_model, mode)
        # compress_to_fp16 defaults to True: that would round every weight and break f32 parity
        ov.save_model(ov_model, str(folder / name), compress_to_fp16=False)


def weight_compression(weights: str, part: str) -> str | None:
    """The ``nncf.compress_weights`` mode ("int8", "int4") for one IR file, or None."""
    if weights == "f32" or (weights in QUANTIZED_MODES and part in (VISION_FILE, PREFILL_FILE)):
        return None  # f32, or already int8 through nncf.quantize
    int4 = part == DECODER_FILE or (weights == "int4" and part == PREFILL_FILE)
    return "int4" if weights in ("int4", "w8a8-int4") and int4 else "int8"


@contextmanager
def _quiet_nncf() -> Iterator[None]:
    import logging

    from nncf.common.logging.logger import nncf_logger

    level = nncf_logger.level
    nncf_logger.setLevel(logging.WARNING)  # its per-part statistics table is noise in a test log
    try:
        yield
    finally:
        nncf_logger.setLevel(level)


def _compress(ov_model: ov.Model, mode: str) -> ov.Model:
    import nncf

    with _quiet_nncf():
        if mode == "int4":
            return nncf.compress_weights(
                ov_model,
                mode=nncf.CompressWeightsMode.INT4_ASYM,
                group_size=INT4_GROUP_SIZE,
                ratio=INT4_RATIO,
            )
        return nncf.compress_weights(ov_model, mode=nncf.CompressWeightsMode.INT8_ASYM)


def _quantize(
    ov_model: ov.Model, feeds: list[dict[str, np.ndarray]], ignore: tuple[str, ...] = ()
) -> ov.Model:
    """Post-training W8A8: int8 weights and activations (FakeQuantize), SmoothQuant for LLMs.
    ``ignore``: operation types left unquantized."""
    import nncf

    ignored = nncf.IgnoredScope(types=list(ignore), validate=False) if ignore else None
    with _quiet_nncf(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nncf.quantize(
            ov_model,
            nncf.Dataset(feeds),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(feeds),
            ignored_scope=ignored,
        )


def entry_key(reference: ReferenceModel, weights: str) -> tuple[str, dict[str, object]]:
    """The cache key of ``reference`` exported with ``weights``, and the manifest's metadata."""
    settings = export_settings(weights)
    versions = export_versions(*(("nncf",) if weights != "f32" else ()))
    key = cache_key(reference.weights_hash, settings, versions)
    return key, {"model": reference.name, "settings": settings, "versions": versions}


def export_entry(
    reference: ReferenceModel,
    *,
    weights: str = "f32",
    cache_dir: str | os.PathLike[str] | None = None,
) -> CacheEntry:
    """A verified cache entry holding ``reference`` as IR, exported now if it is not cached."""
    key, metadata = entry_key(reference, weights)
    return ensure_entry(
        cache_root(cache_dir),
        key,
        lambda folder: export_parts(
            reference.model, folder, weights, lambda: calibration_feeds(reference)
        ),
        metadata,
    )


def prompt_only(stateless: ov.Model) -> ov.Model:
    """``stateless`` (past in, present out) for a whole prompt: its past inputs become empty
    constants, in place, and the model is returned.

    Prefill and :meth:`OpenVINORunner.score` always start from an empty cache. Fed as inputs, the
    empty pasts cost a ``Concat`` in front of every layer's attention, in f32. As constants, the
    plugin folds the concatenations away: on ``bench`` (2 threads, 25 shuffled rounds,
    ``scripts/openvino_prompt_ir.py``) the bf16 prompt ran 4.8 % faster, same logits; on the W8A8
    prompt the change was within noise. The present outputs keep their names, so the stateful
    decoder's variables are still loaded from them."""
    import openvino as ov
    from openvino import opset13

    empties = empty_past(stateless)
    for parameter in list(stateless.get_parameters()):
        name = parameter.get_output_tensor(0).get_any_name()
        if name not in empties:
            continue
        element = parameter.get_output_element_type(0)
        empty = opset13.constant(empties[name])
        if element != ov.Type.f32:
            empty = opset13.convert(empty, element)
        for target in list(parameter.output(0).get_target_inputs()):
            target.replace_source_output(empty.output(0))
        stateless.remove_parameter(parameter)
    stateless.validate_nodes_and_infer_types()
    return stateless


def empty_past(model: ov.Model, batch: int = 0) -> dict[str, np.ndarray]:
    """An empty f32 cache for each past input of ``model``: zero length on its dynamic axes, but
    ``batch`` rows where the batch axis is dynamic too (a feed's rows must match its inputs')."""
    empties = {}
    for port in model.inputs:
        name = port.get_any_name()
        if name.startswith("past_key_values."):
            shape = [d.get_length() if d.is_static else 0 for d in port.get_partial_shape()]
            if not port.get_partial_shape()[0].is_static:
                shape[0] = batch
            empties[name] = np.zeros(shape, dtype=np.float32)
    return empties


def stateless_copy(stateful: ov.Model) -> ov.Model:
    """The stateful decoder with its cache variables turned back into inputs and outputs: the
    graph the prompt IR is checked and measured against (tests, scripts/openvino_prompt_ir.py)."""
    from openvino._offline_transformations import stateful_to_stateless_transformation

    model = stateful.clone()
    stateful_to_stateless_transformation(model)
    return model
