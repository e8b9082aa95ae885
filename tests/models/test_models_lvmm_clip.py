"""LVMM's condition from the user's CLIP encoders (models/lvmm/clip.py) and the condition encoder's token sources."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_clip import TOKENIZER, make_tiny_clip

from imagedynamics.models.lvmm import LVMM, LVMMConfig
from imagedynamics.models.lvmm.clip import (
    ClipTextEmbedder,
    ClipVisionEmbedder,
    clip_preprocess,
    describe_clip_text,
    describe_clip_vision,
    fingerprints_match,
)
from imagedynamics.models.lvmm.config import EncoderConfig
from imagedynamics.models.lvmm.denoiser import ConditionEncoder

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("clip"))


def test_token_sources():
    base = dict(widths=(16, 32), grid=2, embed_dim=32, norm_num_groups=8)
    own = ConditionEncoder(EncoderConfig(**base))
    both = ConditionEncoder(EncoderConfig(**base, clip_vision_dim=24, clip_text_dim=40))
    clip_only = ConditionEncoder(EncoderConfig(**base, own_tokens=False, clip_vision_dim=24))
    image = torch.rand(3, 3, 16, 16)
    assert own(image).shape == (3, 5, 32)
    vision, text = torch.randn(3, 24), torch.randn(1, 40)  # one prompt for the whole batch
    assert both(image, vision, text).shape == (3, 7, 32)
    assert clip_only(image, vision).shape == (3, 1, 32) and not hasattr(clip_only, "net")
    assert set(own.state_dict()) < set(both.state_dict())  # the self-contained encoder's names are unchanged
    changed = both(image, vision, text.flip(-1))
    assert not torch.allclose(changed[:, -1], both(image, vision, text)[:, -1])  # the text reaches its token
    with pytest.raises(ValueError, match="pass clip_text"):
        both(image, vision)
    with pytest.raises(ValueError, match=r"clip_vision must be \[3, 24\]"):
        both(image, torch.randn(3, 16), text)
    with pytest.raises(ValueError, match="at least one token source"):
        LVMMConfig.preset("tiny").replace(encoder=EncoderConfig(**base, own_tokens=False)).validate()


def test_version_1_configs_load_with_the_self_contained_encoder():
    data = LVMMConfig.preset("tiny").to_dict()
    data["version"] = 1
    for key in ("own_tokens", "clip_vision_dim", "clip_text_dim", "clip_vision_name", "clip_text_name",
                "clip_vision_fingerprint", "clip_text_fingerprint", "text_dropout"):
        data["encoder"].pop(key)
    config = LVMMConfig.from_dict(data)
    assert config.encoder.own_tokens and config.encoder.num_tokens == 5


def test_embedders_read_the_users_files(clip_files, tmp_path):
    vision = ClipVisionEmbedder(clip_files["vision"], clip_files["vision_config"])
    text = ClipTextEmbedder(clip_files["text"], TOKENIZER, clip_files["text_config"])  # SD 1.5 prefix, no projection
    pictures = torch.rand(2, 3, 40, 56)
    embeds = vision.embed(pictures)
    assert embeds.shape == (2, 24) and torch.allclose(vision.embed(pictures[1:]), embeds[1:], atol=1e-5)
    pooled = text.embed(["a flag waving in the wind", "", "a flag waving in the wind"])
    assert pooled.shape == (3, 32) and torch.equal(pooled[0], pooled[2]) and not torch.allclose(pooled[0], pooled[1])
    ids = text.token_ids("a flag")
    assert len(ids) == 77 and ids[0] == 49406 and ids[3:] == [49407] * 74  # start, 2 tokens, end, end padding
    assert len(text.token_ids("word " * 200)) == 77
    assert describe_clip_vision(clip_files["vision"]).dim == 24 and describe_clip_text(clip_files["text"]).dim == 32
    with pytest.raises(ValueError, match="unknown shape"):
        ClipVisionEmbedder(clip_files["vision"])  # not a standard ViT: its JSON config is needed
    with pytest.raises(ValueError, match="not a CLIP text encoder"):
        describe_clip_text(clip_files["vision"])


def test_fingerprints_tell_encoders_apart_but_not_precisions(clip_files, tmp_path):
    state = load_file(str(clip_files["text"]))
    save_file({k: v.half() for k, v in state.items()}, str(tmp_path / "half.safetensors"))
    other = make_tiny_clip(tmp_path / "other", seed=1)
    a, half, b = (describe_clip_text(p) for p in (clip_files["text"], tmp_path / "half.safetensors", other["text"]))
    assert fingerprints_match(a.fingerprint, half.fingerprint, a.scale)
    assert not fingerprints_match(a.fingerprint, b.fingerprint, a.scale)


def test_preprocess_centre_crops_the_short_side():
    image = torch.zeros(1, 3, 100, 300)
    image[..., 100:200] = 1.0  # a white centre square
    pixels = clip_preprocess(image, size=32, mean=(0.0,) * 3, std=(1.0,) * 3)
    assert pixels.shape == (1, 3, 32, 32) and float(pixels[..., 2:-2].min()) > 0.99  # edges: bicubic ringing


def test_lvmm_condition_with_clip_tokens():
    config = LVMMConfig.preset("tiny")
    config.encoder.clip_text_dim = 32
    model = LVMM(config).eval()
    image = torch.rand(1, 3, 64, 64)
    a = model.condition(image, clip_text=torch.randn(1, 32))
    assert a.shape == (1, 6, 32)
    with pytest.raises(ValueError, match="clip text embedding"):
        model.condition(image)
