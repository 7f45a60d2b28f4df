"""The model, its processor and the checkpoint loader, on the tiny preset."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pytest_cxrperf.backends.torch_runner import TorchRunner
from pytest_cxrperf.errors import ModelLoadError, StudyError
from pytest_cxrperf.model.loader import build_preset, load_checkpoint, load_model, save_checkpoint
from pytest_cxrperf.model.presets import PRESETS
from pytest_cxrperf.model.processor import load_grayscale
from pytest_cxrperf.model.study import load_studies, load_study
from pytest_cxrperf.model.study_record import Study


@pytest.fixture(scope="module")
def tiny():
    return build_preset("tiny")


@pytest.fixture(scope="module")
def study():
    return load_studies()[0]


def test_full_size_presets_have_published_dimensions():
    maira = PRESETS["maira2"]
    assert maira.image_tokens_per_image == 1369  # 518 px, patch 14
    assert maira.projector_layers == 4
    assert maira.decoder["hidden_size"] == 4096 and maira.decoder["num_hidden_layers"] == 32
    cxr = PRESETS["cxrreportgen"]
    assert cxr.vision_type == "clip" and cxr.image_size == 224 and cxr.decoder_type == "phi3"
    assert cxr.image_tokens_per_image == 196


def test_preset_weights_are_seeded(tiny):
    assert build_preset("tiny").weights_hash == tiny.weights_hash
    assert build_preset("tiny", seed=1).weights_hash != tiny.weights_hash


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="'huge' is neither a preset"):
        load_model("huge")


def test_prompt_splices_images_and_fills_missing_context(tiny, study):
    inputs = tiny.processor(study)
    per_image = tiny.config.image_tokens_per_image
    n_images = len(study.images())
    assert inputs.pixel_values.shape == (n_images, 3, 112, 112)
    assert int((inputs.input_ids == tiny.config.image_token_id).sum()) == per_image * n_images
    assert "INDICATION:" in inputs.prompt and "FINDINGS:" in inputs.prompt
    empty = Study(name="x", frontal=study.frontal)
    assert "COMPARISON: N/A" in tiny.processor(empty).prompt


def test_generation_is_greedy_and_forced_length(tiny, study):
    runner = TorchRunner(tiny.model, tiny.processor)
    inputs = tiny.processor(study)
    gen = runner.generate(inputs, 6, force_length=True, return_logits=True)
    assert len(gen.token_ids) == 6
    assert gen.step_logits.shape == (6, tiny.config.vocab_size)
    assert gen.step_logits.argmax(-1).tolist() == gen.token_ids
    assert len(gen.timings.decode_s) == 5 and gen.timings.total_s > 0
    scored = runner.score(inputs, gen.token_ids)
    torch.testing.assert_close(scored, gen.step_logits, atol=1e-4, rtol=1e-4)


def test_checkpoint_round_trip(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.weights_hash == tiny.weights_hash
    assert load_model(str(tmp_path / "ckpt")).source == "checkpoint"


def test_checkpoint_errors(tiny, tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_checkpoint(tmp_path / "missing")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(ModelLoadError, match="pickle"):
        load_checkpoint(pickled)
    ckpt = save_checkpoint(tiny, tmp_path / "ckpt")
    (ckpt / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ModelLoadError, match="not a readable safetensors"):
        load_checkpoint(ckpt)
    ckpt = save_checkpoint(tiny, tmp_path / "ckpt2")
    (ckpt / "cxrperf_config.json").write_text("{")
    with pytest.raises(ModelLoadError, match="not a valid architecture config"):
        load_checkpoint(ckpt)
    config = tiny.config.to_dict()
    config["decoder"] = {**config["decoder"], "hidden_size": 64}
    (ckpt / "cxrperf_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="shape"):
        load_checkpoint(ckpt)


@pytest.mark.parametrize(
    "mode, dtype, scale",
    [
        ("L", np.uint8, 255),
        ("I;16", np.uint16, 65535),
        ("RGBA", np.uint8, 255),
        ("F", np.float32, 1),
    ],
)
def test_image_modes_are_normalised(tmp_path, mode, dtype, scale):
    ramp = np.linspace(0.2, 0.8, 64 * 48).reshape(48, 64)
    if mode == "RGBA":
        rgb = (np.stack([ramp] * 3 + [np.ones_like(ramp)], -1) * scale).astype(dtype)
        image = Image.fromarray(rgb, mode="RGBA")
        path = tmp_path / "x.png"
    elif mode == "F":
        image = Image.fromarray(ramp.astype(np.float32), mode="F")
        path = tmp_path / "x.tiff"
    else:
        image = Image.fromarray((ramp * scale).astype(dtype))
        path = tmp_path / "x.png"
    image.save(path)
    gray = load_grayscale(path)
    assert gray.shape == (48, 64)
    assert gray.min() == pytest.approx(0.0, abs=1e-3) and gray.max() == pytest.approx(1.0, abs=1e-3)


def test_bad_images_are_clear_errors(tmp_path):
    with pytest.raises(StudyError, match="does not exist"):
        load_grayscale(tmp_path / "nope.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not a png")
    with pytest.raises(StudyError, match="cannot be read as an image"):
        load_grayscale(junk)
    good = tmp_path / "good.png"
    Image.fromarray((np.random.default_rng(0).random((256, 256)) * 255).astype(np.uint8)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(StudyError, match="corrupt or truncated"):
        load_grayscale(truncated)


def test_huge_image_is_refused_before_decoding(tmp_path, monkeypatch):
    import pytest_cxrperf.model.processor as processor

    monkeypatch.setattr(processor, "MAX_IMAGE_PIXELS", 100)
    path = tmp_path / "big.png"
    Image.new("L", (20, 20)).save(path)
    with pytest.raises(StudyError, match="downsample"):
        load_grayscale(path)


def test_blank_image_is_valid(tmp_path):
    path = tmp_path / "blank.png"
    Image.new("L", (32, 32), color=128).save(path)
    assert float(load_grayscale(path).max()) == 0.0


def test_study_json_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(StudyError, match="JSON object"):
        load_study(bad)
    bad.write_text("{nope")
    with pytest.raises(StudyError, match="not valid JSON"):
        load_study(bad)
    bad.write_text(json.dumps({"indication": "x"}))
    with pytest.raises(StudyError, match="frontal"):
        load_study(bad)
    bad.write_text(json.dumps({"frontal": "a.png", "indicaton": "typo"}))
    with pytest.raises(StudyError, match="unknown keys"):
        load_study(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(StudyError, match=r"no \*\.json"):
        load_studies(tmp_path / "empty")


def test_checkpoint_with_other_transformers_parameter_names_loads(tiny, tmp_path):
    """transformers 4.x and 5.x name DINOv2's attention weights differently; both must load."""
    from safetensors.torch import load_file, save_file

    from pytest_cxrperf.model.formats import RENAMED_PARAMETERS as _RENAMED_PARAMETERS

    ckpt = save_checkpoint(tiny, tmp_path / "ckpt")
    state = load_file(str(ckpt / "model.safetensors"))
    other = {}
    for key, tensor in state.items():
        for old, new in _RENAMED_PARAMETERS:
            key = key.replace(new, old) if new in key else key.replace(old, new)
        other[key] = tensor
    assert set(other) != set(state)
    save_file(other, str(ckpt / "model.safetensors"))
    assert load_checkpoint(ckpt).weights_hash == tiny.weights_hash


@pytest.mark.parametrize("preset", ["toy", "maira2-layout"])
def test_a_fresh_process_builds_on_the_meta_device_first_thing(preset, tmp_path):
    """torch 2.8 (the IPEX environment) first imports torch._dynamo while transformers' model
    modules import; inside ``with torch.device("meta")`` that import re-entered itself and failed
    as circular. The bug shows only in a process where nothing has imported them yet."""
    import subprocess
    import sys

    if preset == "toy":
        code = "from pytest_cxrperf.model.loader import build_preset; build_preset('toy')"
    else:
        from pytest_cxrperf.synth.checkpoint import write_maira2_checkpoint

        folder = write_maira2_checkpoint(tmp_path / "maira2")
        code = f"from pytest_cxrperf.model.loader import load_model; load_model({str(folder)!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
