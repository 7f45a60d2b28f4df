"""compile-int8: torchao int8 dynamic quantization (then torch.compile) of the fp32 model.

The compiled backend itself runs in every ``pytest --cxr-backend=all`` (its equivalence on the toy
model is part of the main job); here the parts that do not need a minute of compilation: what it
needs to run, what the quantization does to the model, and that the quantized model, uncompiled,
stays within int8's tolerances of eager fp32 on the toy model.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from pytest_cxrperf.backends import torch_compile
from pytest_cxrperf.backends.registry import backend_names, get_backend_class
from pytest_cxrperf.backends.torch_compile import CompileInt8Backend
from pytest_cxrperf.backends.torch_runner import TorchRunner
from pytest_cxrperf.gate.equivalence import (
    clinical_check,
    compare_prefill_logits,
    compare_tokens,
    tolerances_for,
)
from pytest_cxrperf.model.loader import build_preset
from pytest_cxrperf.model.study import load_studies

NEW_TOKENS = 32


def test_registered_with_its_precision():
    assert "compile-int8" in backend_names()
    cls = get_backend_class("compile-int8")
    assert cls is CompileInt8Backend and cls.precision == "int8"


def test_without_torchao_it_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torchao" else real(name, *a)
    )
    availability = CompileInt8Backend().availability()
    assert not availability.ok
    assert "torchao is not installed" in availability.reason
    assert "pytest-cxrperf[torchao]" in availability.reason


def test_without_a_compiler_it_says_so(monkeypatch):
    pytest.importorskip("torchao")
    monkeypatch.setattr(torch_compile.shutil, "which", lambda name: None)
    availability = CompileInt8Backend().availability()
    assert not availability.ok and "C++ compiler" in availability.reason


def test_a_broken_torchao_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def broken(name, *args, **kwargs):
        if name.startswith("torchao"):
            raise ImportError("libtorchao.so: undefined symbol")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken)
    expected = r"compile-int8 needs torchao.*pytest-cxrperf\[torchao\]"
    with pytest.raises(RuntimeError, match=expected):
        torch_compile.int8_dynamic_copy(torch.nn.Linear(4, 4))


@pytest.fixture(scope="module")
def toy():
    return build_preset("toy")


@pytest.fixture(scope="module")
def quantized(toy):
    pytest.importorskip("torchao")
    return torch_compile.int8_dynamic_copy(toy.model)


def test_every_linear_holds_int8_weights_and_the_reference_is_untouched(toy, quantized):
    model, version = quantized
    assert version.count(".") >= 1
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    originals = [m for m in toy.model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and len(linears) == len(originals)
    for layer in linears:
        inner, _ = layer.weight.__tensor_flatten__()
        assert getattr(layer.weight, inner[0]).dtype == torch.int8, type(layer.weight)
    assert all(type(m.weight) is torch.nn.Parameter for m in originals)
    assert all(m.weight.dtype == torch.float32 for m in originals)


def test_the_quantized_model_keeps_int8_tolerances_on_the_toy_model(toy, quantized):
    model, _ = quantized
    tol = tolerances_for("int8", "compile-int8")
    reference = TorchRunner(toy.model, toy.processor)
    candidate = TorchRunner(model, toy.processor)
    for study in load_studies():
        inputs = toy.processor(study)
        ref = reference.generate(inputs, NEW_TOKENS, return_logits=True)
        out = candidate.generate(inputs, NEW_TOKENS, return_logits=True)
        assert ref.step_logits is not None
        tokens = compare_tokens(ref.token_ids, out.token_ids, ref.step_logits, tol.tie_margin)
        assert tokens.ok, tokens.message
        ref_logits = reference.score(inputs, ref.token_ids)
        logits = candidate.score(inputs, ref.token_ids)
        prefill = compare_prefill_logits(ref_logits[0], logits[0], tol.prefill_rel_err)
        assert prefill.ok, prefill.message
        assert not torch.equal(ref_logits, logits)  # it really computed in int8
        clinical = clinical_check(ref.text, out.text, "eager")
        assert clinical["ok"], clinical["message"]


@pytest.mark.usefixtures("no_isa_cap")
def test_each_machine_class_compiles_into_its_own_inductor_cache(monkeypatch, tmp_path):
    """Inductor's cache did not tell ``ATEN_CPU_CAPABILITY=avx2`` apart from an uncapped run, and
    compile-int8 then reused the wrong kernels (every report began with token 0): each class gets
    a directory of its own under the user's root, chosen once per process (no nesting)."""
    from pytest_cxrperf import machine

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(torch_compile, "_inductor_root", None)
    uncapped = torch_compile.use_class_inductor_cache()
    assert uncapped.startswith(str(tmp_path)) and uncapped != str(tmp_path)
    assert torch_compile.use_class_inductor_cache() == uncapped  # the root is kept, not nested
    monkeypatch.setenv(machine.ATEN_CAP_ENV, "avx2")
    capped = torch_compile.use_class_inductor_cache()
    assert capped.startswith(str(tmp_path)) and capped != uncapped
    assert "-aten_avx2-" in machine.machine_class(1).cpu_key  # a class of its own
