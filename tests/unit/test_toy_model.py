"""The shipped toy radiologist: it loads, and it reads the shipped sample studies correctly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_cxrperf.backends.torch_runner import TorchRunner
from pytest_cxrperf.errors import ModelLoadError
from pytest_cxrperf.gate.findings import compare, extract
from pytest_cxrperf.model.loader import build_toy, load_checkpoint
from pytest_cxrperf.model.processor import CXRProcessor
from pytest_cxrperf.model.study import load_studies
from pytest_cxrperf.model.toy import (
    TOY_CONFIG,
    pixel_values_from_arrays,
    toy_dir,
    toy_metrics,
)
from pytest_cxrperf.synth.phantom import PhantomSpec, render

MAX_NEW_TOKENS = 48


@pytest.fixture(scope="module")
def toy():
    return build_toy()


def test_toy_checkpoint_loads(toy) -> None:
    assert toy.name == "toy"
    assert toy.config == TOY_CONFIG
    assert not toy.model.training
    info = toy.describe()
    assert 500_000 < int(info["parameters"]) < 3_000_000  # a few MB of fp32 weights
    assert info["image_tokens_per_image"] == 64
    files = {p.name for p in toy_dir().iterdir()}
    assert {"model.safetensors", "cxrperf_config.json", "tokenizer.json", "metrics.json"} <= files
    # the loader's own checkpoint path reads the same directory
    assert load_checkpoint(toy_dir()).weights_hash == toy.weights_hash


def test_recorded_held_out_accuracy_is_high() -> None:
    metrics = toy_metrics()
    assert metrics["held_out_studies"] >= 100
    assert metrics["exact_match"] >= 0.9


@pytest.mark.parametrize("study", load_studies(), ids=lambda s: s.name)
def test_greedy_report_states_the_ground_truth(toy, study) -> None:
    assert study.reference_findings, f"{study.name} has no ground-truth findings"
    runner = TorchRunner(toy.model, toy.processor)
    generation = runner.generate(toy.processor(study), MAX_NEW_TOKENS, return_logits=True)
    assert generation.token_ids[-1] == TOY_CONFIG.eos_token_id, generation.text
    # every greedy step wins clearly: no near tie for a lower-precision backend to flip
    assert generation.step_logits is not None
    top2 = generation.step_logits.topk(2, dim=-1).values
    assert float((top2[:, 0] - top2[:, 1]).min()) > 0.5
    truth = extract(study.reference_findings)
    assert truth, study.reference_findings
    got = extract(generation.text)
    assert got == truth, (generation.text, compare(truth, got))


def test_sample_studies_cover_16_bit_and_lateral() -> None:
    from PIL import Image

    studies = load_studies()
    assert 3 <= len(studies) <= 4
    assert any(s.lateral is not None for s in studies)
    modes = set()
    for s in studies:
        with Image.open(s.frontal) as image:
            modes.add(image.mode)
    assert any(m.startswith("I;16") for m in modes)


def test_in_memory_pixels_match_the_processor(tmp_path, toy) -> None:
    from PIL import Image

    image = render(PhantomSpec(effusion="left"), 200, seed=3)
    path = tmp_path / "x.png"
    Image.fromarray(np.round(image * 255).astype(np.uint8), mode="L").save(path)
    expected = CXRProcessor(TOY_CONFIG, toy.tokenizer).pixel_values([path])
    assert torch.allclose(pixel_values_from_arrays(TOY_CONFIG, [image]), expected, atol=1e-5)


def test_missing_weights_give_a_clear_error(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match=r"train_toy\.py"):
        build_toy(tmp_path)
