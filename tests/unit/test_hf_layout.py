"""Published checkpoints (MAIRA-2's Hugging Face layout) load and compute what transformers'
own classes compute on the same weights (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from pytest_cxrperf.errors import ModelLoadError
from pytest_cxrperf.model.loader import check_model, load_model
from pytest_cxrperf.model.processor import MAIRA2_SYSTEM, Maira2Processor
from pytest_cxrperf.model.study import load_studies
from pytest_cxrperf.synth.checkpoint import write_maira2_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_maira2_checkpoint(tmp_path_factory.mktemp("maira2") / "ckpt", shards=3)


def _reference(folder: Path):
    """Built from transformers classes and the files alone: Dinov2Backbone (feature_maps[-1],
    CLS dropped), Linear/GELU projector, LlamaForCausalLM; names mapped by hand."""
    from transformers import Dinov2Backbone, Dinov2Config, LlamaConfig, LlamaForCausalLM

    config = json.loads((folder / "config.json").read_text())
    vision = Dinov2Backbone(Dinov2Config(**config["vision_config"])).eval()
    text = LlamaForCausalLM(LlamaConfig(**config["text_config"])).eval()
    hidden, width = config["vision_config"]["hidden_size"], config["text_config"]["hidden_size"]
    layers: list[torch.nn.Module] = [torch.nn.Linear(hidden, width)]
    for _ in range(config["projector_n_layers"] - 1):
        layers += [torch.nn.GELU(), torch.nn.Linear(width, width)]
    projector = torch.nn.Sequential(*layers).eval()
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    state: dict[str, dict[str, torch.Tensor]] = {"vision": {}, "projector": {}, "text": {}}
    for name, shard in index["weight_map"].items():
        with safe_open(str(folder / shard), framework="pt") as handle:
            tensor = handle.get_tensor(name)
        if name.startswith("vision_tower."):
            key = name.removeprefix("vision_tower.")
            for old, new in (
                (".attention.attention.query.", ".attention.q_proj."),
                (".attention.attention.key.", ".attention.k_proj."),
                (".attention.attention.value.", ".attention.v_proj."),
                (".attention.output.dense.", ".attention.o_proj."),
            ):
                if key.replace(old, new) in vision.state_dict():
                    key = key.replace(old, new)
            state["vision"][key] = tensor
        elif name.startswith("multi_modal_projector.layers."):
            state["projector"][name.removeprefix("multi_modal_projector.layers.")] = tensor
        else:
            state["text"][name.removeprefix("language_model.")] = tensor
    vision.load_state_dict(state["vision"], strict=True)
    projector.load_state_dict(state["projector"], strict=True)
    text.load_state_dict(state["text"], strict=True)

    def logits(pixel_values: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        features = vision(pixel_values=pixel_values).feature_maps[-1][:, 1:]
        image = projector(features).reshape(-1, width)
        embeds = text.get_input_embeddings()(input_ids).clone()
        embeds[input_ids == config["image_token_index"]] = image
        return text(inputs_embeds=embeds).logits

    return logits


def test_logits_match_transformers_reference(checkpoint):
    loaded = load_model(str(checkpoint))
    assert isinstance(loaded.processor, Maira2Processor)
    assert loaded.config.decoder["rope_scaling"]["factor"] == 1.5
    study = load_studies()[1]  # frontal + lateral
    inputs = loaded.processor(study)
    assert inputs.pixel_values.shape == (2, 3, 112, 112)
    model = loaded.model
    with torch.no_grad():
        embeds = model.embed_prompt(inputs.input_ids, model.encode_images(inputs.pixel_values))
        ours = model.language_model(inputs_embeds=embeds).logits
        theirs = _reference(checkpoint)(inputs.pixel_values, inputs.input_ids)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    assert all(not t.is_meta for t in [*model.parameters(), *model.buffers()])


def test_prompt_is_maira2_chat(checkpoint):
    loaded = load_model(str(checkpoint))
    inputs = loaded.processor(load_studies()[1])
    assert inputs.prompt.startswith("<s>" + MAIRA2_SYSTEM + " USER: Given the current frontal")
    assert " The current lateral image: <image>x" in inputs.prompt
    assert "radiology study. INDICATION: " in inputs.prompt
    assert inputs.prompt.endswith(" ASSISTANT:")
    per_image = loaded.config.image_tokens_per_image
    assert int((inputs.input_ids == loaded.config.image_token_id).sum()) == 2 * per_image


def test_pixels_follow_bit_image_processor(checkpoint, tmp_path):
    """Greyscale -> [0, 255] -> shortest-edge resize, centre crop, mean/std 0.5307/0.2583."""
    import numpy as np
    from PIL import Image

    loaded = load_model(str(checkpoint))
    ramp = np.tile(np.linspace(0, 1, 300, dtype=np.float32), (200, 1))
    Image.fromarray((ramp * 65535).astype(np.uint16)).save(tmp_path / "r.png")
    pixels = loaded.processor.pixel_values([tmp_path / "r.png"])
    assert pixels.shape == (1, 3, 112, 112)
    assert torch.equal(pixels[0, 0], pixels[0, 2])
    low, high = (0 - 0.5307) / 0.2583, (1 - 0.5307) / 0.2583
    assert float(pixels.min()) >= low - 1e-5 and float(pixels.max()) <= high + 1e-5
    assert float(pixels[0, 0, :, 0].mean()) < float(pixels[0, 0, :, -1].mean())


def test_remote_code_is_never_imported(checkpoint):
    assert (checkpoint / "modeling_maira2.py").read_text().startswith("raise")
    check_model(str(checkpoint))  # the module would raise on import
    load_model(str(checkpoint))


def _copy(checkpoint: Path, target: Path) -> Path:
    import shutil

    return Path(shutil.copytree(checkpoint, target))


def _edit_shard(folder: Path, change) -> None:
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    shard = folder / sorted(set(index["weight_map"].values()))[0]
    with safe_open(str(shard), framework="pt") as handle:
        state = {k: handle.get_tensor(k) for k in list(handle.keys())}
    change(state, index)
    save_file(state, str(shard))
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


def test_missing_tensor_is_named(checkpoint, tmp_path):
    folder = _copy(checkpoint, tmp_path / "c")

    def drop(state, index):
        name = sorted(state)[0]
        del state[name]
        del index["weight_map"][name]

    _edit_shard(folder, drop)
    with pytest.raises(ModelLoadError, match=r"missing \['language_model"):
        check_model(str(folder))


def test_unexpected_tensor_is_named(checkpoint, tmp_path):
    folder = _copy(checkpoint, tmp_path / "c")

    def add(state, index):
        state["vision_tower.pooler.weight"] = torch.zeros(2)
        index["weight_map"]["vision_tower.pooler.weight"] = index["weight_map"][sorted(state)[0]]

    _edit_shard(folder, add)
    with pytest.raises(ModelLoadError, match=r"unexpected \['vision_tower.pooler.weight'\]"):
        load_model(str(folder))


def test_misshaped_tensor_is_named(checkpoint, tmp_path):
    folder = _copy(checkpoint, tmp_path / "c")
    names: list[str] = []

    def shrink(state, index):
        names.append(sorted(state)[-1])
        state[names[0]] = state[names[0]][..., :1].contiguous()

    _edit_shard(folder, shrink)
    with pytest.raises(ModelLoadError, match=rf"{names[0]} has shape"):
        check_model(str(folder))


def test_unknown_model_type_lists_supported(checkpoint, tmp_path):
    folder = _copy(checkpoint, tmp_path / "c")
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "llava_next"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="'llava_next' is not supported; supported: maira2"):
        check_model(str(folder))


def test_missing_shard_and_pickles(checkpoint, tmp_path):
    folder = _copy(checkpoint, tmp_path / "c")
    (folder / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(
        ModelLoadError, match=r"model-00002-of-00003\.safetensors, which is missing"
    ):
        check_model(str(folder))
    for shard in folder.glob("*.safetensors"):
        shard.unlink()
    (folder / "model.safetensors.index.json").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(ModelLoadError, match="pickle"):
        check_model(str(folder))


def test_single_file_and_unsharded_load(checkpoint, tmp_path):
    folder = _copy(checkpoint, tmp_path / "c")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    state = {}
    for shard in sorted(set(index["weight_map"].values())):
        with safe_open(str(folder / shard), framework="pt") as handle:
            state.update({k: handle.get_tensor(k) for k in list(handle.keys())})
        (folder / shard).unlink()
    (folder / "model.safetensors.index.json").unlink()
    save_file(state, str(folder / "model.safetensors"))
    assert load_model(str(folder)).weights_hash == load_model(str(checkpoint)).weights_hash


def test_tokenizer_files(checkpoint, tmp_path):
    folder = _copy(checkpoint, tmp_path / "c")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelLoadError, match=r"neither tokenizer\.json nor tokenizer\.model"):
        check_model(str(folder))
    (folder / "tokenizer.model").write_bytes(b"not a sentencepiece model")
    try:
        import google.protobuf  # noqa: F401
        import sentencepiece  # noqa: F401
    except ImportError:
        with pytest.raises(ModelLoadError, match="pip install sentencepiece protobuf"):
            check_model(str(folder))
    else:
        with pytest.raises(ModelLoadError, match="not a readable SentencePiece model"):
            check_model(str(folder))


def test_sentencepiece_tokenizer_model_loads(checkpoint, tmp_path):
    """A Llama-style SentencePiece model (no tokenizer.json) encodes as sentencepiece does."""
    spm = pytest.importorskip("sentencepiece")
    pytest.importorskip("google.protobuf")
    from pytest_cxrperf.model.tokenizer import _CORPUS

    folder = _copy(checkpoint, tmp_path / "c")
    (folder / "tokenizer.json").unlink()
    lines = [line for line in _CORPUS.splitlines() if line.strip()]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines * 3),
        model_prefix=str(tmp_path / "m"),
        vocab_size=600,
        model_type="bpe",
        user_defined_symbols=["<image>"],
        byte_fallback=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    (folder / "tokenizer.model").write_bytes((tmp_path / "m.model").read_bytes())
    loaded = load_model(str(folder))
    text = "INDICATION: Cough and fever. There is a small left pleural effusion."
    ids = loaded.tokenizer.encode(text, add_special_tokens=False).ids
    assert ids == spm.SentencePieceProcessor(model_file=str(tmp_path / "m.model")).encode(text)
    assert loaded.tokenizer.token_to_id("<image>") == loaded.config.image_token_id == 3
    assert loaded.processor.decode(ids) == text
    inputs = loaded.processor(load_studies()[1])  # <image> stays one token, then is repeated
    per_image = loaded.config.image_tokens_per_image
    assert int((inputs.input_ids == 3).sum()) == 2 * per_image


def test_bf16_checkpoint_loads_as_fp32(checkpoint, tmp_path):
    folder = _copy(checkpoint, tmp_path / "c")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    for shard in sorted(set(index["weight_map"].values())):
        with safe_open(str(folder / shard), framework="pt") as handle:
            state = {k: handle.get_tensor(k).bfloat16() for k in list(handle.keys())}
        save_file(state, str(folder / shard))
    loaded = load_model(str(folder)).model
    original = load_model(str(checkpoint)).model
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    pairs = zip(loaded.state_dict().items(), original.state_dict().values(), strict=True)
    for (name, ours), theirs in pairs:
        assert torch.equal(ours, theirs.bfloat16().float()), name


def test_tied_embeddings_need_no_lm_head(checkpoint, tmp_path):
    folder = _copy(checkpoint, tmp_path / "c")
    config = json.loads((folder / "config.json").read_text())
    config["text_config"]["tie_word_embeddings"] = True
    (folder / "config.json").write_text(json.dumps(config))
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    shard = folder / index["weight_map"].pop("language_model.lm_head.weight")
    with safe_open(str(shard), framework="pt") as handle:
        state = {k: handle.get_tensor(k) for k in list(handle.keys())}
    del state["language_model.lm_head.weight"]
    save_file(state, str(shard))
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    decoder = load_model(str(folder)).model.language_model
    assert decoder.lm_head.weight is decoder.get_input_embeddings().weight
