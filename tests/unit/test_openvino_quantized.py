"""openvino-int4 and openvino-w8a8 on the toy model: their precision's tolerances and the same
clinical findings as eager fp32; the graphs really hold int4 weights / int8 activations.

The exports (with NNCF; w8a8 also calibrates on the phantom studies) go to a temporary cache,
about 10 s in all on 2 cores.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("openvino")
pytest.importorskip("nncf")

from pytest_cxrperf.backends.openvino import (
    OpenVINOInt4Backend,
    OpenVINOW8A8Backend,
    OpenVINOW8A8Int4Backend,
)
from pytest_cxrperf.backends.openvino_export import (
    DECODER_FILE,
    EMBED_FILE,
    PREFILL_FILE,
    VISION_FILE,
    WEIGHT_MODES,
    entry_key,
    weight_compression,
)
from pytest_cxrperf.backends.openvino_paged import PagedRunner
from pytest_cxrperf.backends.registry import backend_names, get_backend_class
from pytest_cxrperf.backends.torch_runner import TorchRunner
from pytest_cxrperf.gate.equivalence import (
    clinical_check,
    compare_prefill_logits,
    compare_teacher_forced,
    compare_tokens,
    tolerances_for,
)
from pytest_cxrperf.model.loader import build_preset
from pytest_cxrperf.model.study import load_studies

NEW_TOKENS = 32


@pytest.fixture(scope="module")
def toy():
    return build_preset("toy")


@pytest.fixture(scope="module")
def studies(toy):
    return [toy.processor(study) for study in load_studies()]


@pytest.fixture(scope="module")
def reference(toy, studies):
    runner = TorchRunner(toy.model, toy.processor)
    out = {}
    for inputs in studies:
        generation = runner.generate(inputs, NEW_TOKENS, return_logits=True)
        out[inputs.study_name] = (generation, runner.score(inputs, generation.token_ids))
    return out


@pytest.fixture(scope="module")
def prepared(toy, studies, tmp_path_factory):
    cache = tmp_path_factory.mktemp("ov-quantized")
    result = {}
    for cls in (OpenVINOInt4Backend, OpenVINOW8A8Backend, OpenVINOW8A8Int4Backend):
        backend = cls(cache_dir=cache)
        result[cls.name] = (backend, backend.prepare(toy, studies[0]))
    return result


@pytest.mark.parametrize("name", ["openvino-int4", "openvino-w8a8", "openvino-w8a8-int4"])
def test_equivalent_to_eager_on_the_toy_model(prepared, studies, reference, name):
    backend, runner = prepared[name]
    tol = tolerances_for(backend.precision, name)
    for inputs in studies:
        ref, ref_teacher = reference[inputs.study_name]
        assert ref.step_logits is not None
        out = runner.generate(inputs, NEW_TOKENS, return_logits=True)
        teacher = runner.score(inputs, ref.token_ids)
        tokens = compare_tokens(ref.token_ids, out.token_ids, ref.step_logits, tol.tie_margin)
        assert tokens.ok, tokens.message
        prefill = compare_prefill_logits(ref_teacher[0], teacher[0], tol.prefill_rel_err)
        assert prefill.ok, prefill.message
        agreement = compare_teacher_forced(ref_teacher, teacher, tol.teacher_top1, tol.tie_margin)
        assert agreement.ok, agreement.message
        clinical = clinical_check(ref.text, out.text, "eager")
        assert clinical["ok"], clinical["message"]


def test_precisions_and_details(prepared):
    int4, _ = prepared["openvino-int4"]
    w8a8, _ = prepared["openvino-w8a8"]
    assert int4.precision == "int4-weights" and int4.prepare_info.details["weights"] == "int4"
    assert w8a8.precision == "int8" and w8a8.prepare_info.details["weights"] == "w8a8"
    mixed, _ = prepared["openvino-w8a8-int4"]
    assert mixed.precision == "int8" and mixed.prepare_info.details["weights"] == "w8a8-int4"
    assert int4.prepare_info.details["attention"] == "stateful"
    for backend in (w8a8, mixed):
        assert backend.prepare_info.details["attention"].startswith("paged")


@pytest.mark.parametrize("name", ["openvino-w8a8", "openvino-w8a8-int4"])
def test_w8a8_backends_run_on_one_paged_cache(prepared, name):
    _, runner = prepared[name]
    assert isinstance(runner, PagedRunner)
    prompt, decode = runner.compiled["prefill"], runner.compiled["decoder"]
    caches = [p.get_any_name() for p in decode.inputs if "_cache." in p.get_any_name()]
    assert caches and set(caches) <= {p.get_any_name() for p in prompt.inputs}
    for name_ in caches:  # the very same tensors, so the prompt writes what decode reads
        assert runner._prefill_request.get_tensor(name_).data.ctypes.data == (
            runner._decoder.get_tensor(name_).data.ctypes.data
        )


def _const_types(model) -> set[str]:
    return {
        op.get_output_element_type(0).get_type_name()
        for op in model.get_ops()
        if op.get_type_name() == "Constant"
    }


def _read(backend, name):
    import openvino as ov

    return ov.Core().read_model(str(Path(str(backend.prepare_info.details["cache_dir"])) / name))


def test_int4_decoder_holds_four_bit_weights(prepared):
    backend, _ = prepared["openvino-int4"]
    assert {"u4", "i4"} & _const_types(_read(backend, DECODER_FILE))
    assert "u8" in _const_types(_read(backend, VISION_FILE))  # vision keeps int8 weights
    assert not {"u4", "i4"} & _const_types(_read(backend, VISION_FILE))


@pytest.mark.parametrize("name", ["openvino-w8a8", "openvino-w8a8-int4"])
def test_w8a8_prefill_and_vision_run_int8_activations(prepared, name):
    backend, _ = prepared[name]
    for part in (PREFILL_FILE, VISION_FILE):
        ops = {op.get_type_name() for op in _read(backend, part).get_ops()}
        assert "FakeQuantize" in ops, part
    prompt = _read(backend, PREFILL_FILE)  # its attention is left to PagedAttention, unquantized
    for op in prompt.get_ops():
        if op.get_type_name() == "ScaledDotProductAttention":
            sources = {i.get_source_output().get_node().get_type_name() for i in op.inputs()}
            assert "FakeQuantize" not in sources
    decoder = _read(backend, DECODER_FILE)  # decode: int8 weights only
    assert not any(op.get_type_name() == "FakeQuantize" for op in decoder.get_ops())
    four_bit = bool({"u4", "i4"} & _const_types(decoder))
    assert four_bit == (name == "openvino-w8a8-int4")


def test_weight_compression_per_part():
    assert weight_compression("f32", DECODER_FILE) is None
    assert weight_compression("int8", VISION_FILE) == "int8"
    assert weight_compression("int4", DECODER_FILE) == "int4"
    assert weight_compression("int4", VISION_FILE) == "int8"
    assert weight_compression("int4", EMBED_FILE) == "int8"
    assert weight_compression("w8a8", VISION_FILE) is None  # quantized, not compressed
    assert weight_compression("w8a8", PREFILL_FILE) is None
    assert weight_compression("w8a8", DECODER_FILE) == "int8"
    assert weight_compression("w8a8-int4", DECODER_FILE) == "int4"
    assert weight_compression("w8a8-int4", EMBED_FILE) == "int8"
    assert weight_compression("w8a8-int4", PREFILL_FILE) is None
    # the prompt IR of the weight-only modes is compressed as their decoder is
    assert weight_compression("f32", PREFILL_FILE) is None
    assert weight_compression("int8", PREFILL_FILE) == "int8"
    assert weight_compression("int4", PREFILL_FILE) == "int4"


def test_keys_differ_per_weight_mode(toy):
    keys = {entry_key(toy, weights)[0] for weights in WEIGHT_MODES}
    assert len(keys) == len(WEIGHT_MODES) == 5
    assert entry_key(toy, "w8a8")[1]["settings"]["calibration"]


def test_the_winners_are_registered_and_the_loser_is_not():
    for cls in (OpenVINOW8A8Backend, OpenVINOW8A8Int4Backend):
        assert get_backend_class(cls.name) is cls
        assert cls().availability().ok
    assert "openvino-int4" not in backend_names()  # out of its tolerance on bench (README)
