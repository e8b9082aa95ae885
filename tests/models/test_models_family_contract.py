"""The one contract every model family keeps (models/checkpoint.py): save, load, wrong family, damaged files and
hostile configs, for each family the registry knows."""
from __future__ import annotations

import json
import struct
import time

import pytest
import torch

from imagedynamics.models import registry
from imagedynamics.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from imagedynamics.models.config import MAX_CHANNELS, MAX_LAYERS, MAX_LEVELS

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (tests/conftest.py)

FAMILIES = sorted(registry.FAMILIES)
MOTION_I2V = "motion_i2v."


def _tiny_gid():
    from imagedynamics.models.gid import GIDConfig, build_gid

    return build_gid(GIDConfig.preset("tiny"), stats=torch.rand(4, 4) + 0.5)


def _tiny_lvmm():
    from imagedynamics.models.lvmm import LVMM, LVMMConfig

    return LVMM(LVMMConfig.preset("tiny"))


def _tiny_renderer():
    from imagedynamics.models.renderer import ImageRenderer, ImageRendererConfig

    return ImageRenderer(ImageRendererConfig.preset("tiny"))


def _tiny_long_animation():
    from imagedynamics.models.long_animation.config import tiny_config
    from imagedynamics.models.long_animation.model import LongAnimationModel

    return LongAnimationModel(tiny_config())


def _tiny_motion_i2v(component: str):
    from imagedynamics.models.motion_i2v.config import tiny_config
    from imagedynamics.models.motion_i2v.model import build_component

    return lambda: build_component(component, tiny_config(component))


# every registered family needs an entry here (and in the two hostile-config tables below)
TINY = {"gid": _tiny_gid, "lvmm": _tiny_lvmm, "renderer": _tiny_renderer, "long_animation": _tiny_long_animation,
        **{f"{MOTION_I2V}{c}": _tiny_motion_i2v(c) for c in ("stage1", "controlnet", "flow_vae", "stage2")}}


def _tiny(family: str) -> torch.nn.Module:
    """A tiny model of ``family`` with every parameter random (no zero-initialised layer to hide a mix-up)."""
    torch.manual_seed(0)
    model = TINY[family]()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def _save(family: str, path, model) -> None:
    module = registry.family_module(family)
    if family.startswith(MOTION_I2V):
        module.save(path, model, family[len(MOTION_I2V):])
    else:
        module.save(path, model)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """``saved(family)`` -> (path, model): a tiny random model of the family written once per module."""
    root = tmp_path_factory.mktemp("contract")
    cache = {}

    def get(family: str):
        if family not in cache:
            path = root / f"{family}.safetensors"
            model = _tiny(family)
            _save(family, path, model)
            cache[family] = (path, model)
        return cache[family]
    return get


# A config each family's limits refuse (the hostile files: 32,768 channels, 200,000 blocks) ...
BEYOND_LIMITS = {
    "gid": {"model": {"unet": {"block_out_channels": [32768] * 4}}},
    "lvmm": {"model": {"denoiser": {"block_out_channels": [32768, 32768]}}},
    "renderer": {"channels": [8, 8, 16], "blocks": 200_000},
    "long_animation": {"svd": {"block_channels": [32768] * 16}},
    **{f"{MOTION_I2V}{c}": {"block_out_channels": [32768] * 4} for c in ("stage1", "controlnet", "flow_vae", "stage2")},
}
# ... and one at the limits: billions of parameters that the file does not hold (refused by the meta-device check)
AT_LIMITS = {
    "gid": {"model": {"unet": {"block_out_channels": [MAX_CHANNELS] * MAX_LEVELS,
                               "spatial_attention": [True] * MAX_LEVELS, "layers_per_block": MAX_LAYERS}}},
    "lvmm": {"model": {"denoiser": {"block_out_channels": [MAX_CHANNELS] * 2, "layers_per_block": MAX_LAYERS}}},
    "renderer": {"channels": [MAX_CHANNELS] * MAX_LEVELS, "blocks": 4 * MAX_LAYERS},
    "long_animation": {"svd": {"block_channels": [MAX_CHANNELS] * 16, "head_channels": 64, "time_depth": MAX_LAYERS,
                               "time_embed_dim": 4 * MAX_CHANNELS, "context_dim": MAX_CHANNELS},
                       "encoder_channels": [MAX_CHANNELS] * 4},
    **{f"{MOTION_I2V}{c}": {"block_out_channels": [MAX_CHANNELS] * 4} for c in ("stage1", "controlnet", "flow_vae",
                                                                               "stage2")},
}


def _rss_mb() -> float:
    """Resident memory of this process (MB), from /proc/self/status."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def test_every_registered_family_is_covered():
    assert set(TINY) == set(BEYOND_LIMITS) == set(AT_LIMITS) == set(registry.FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_module_has_the_contract(family):
    module = registry.family_module(family)
    assert family == module.FAMILY or family.startswith(module.FAMILY + ".")
    assert all(callable(getattr(module, name)) for name in ("save", "load", "from_checkpoint"))
    assert isinstance(module.VERSION, int) and module.VERSION >= 1


@pytest.mark.parametrize("family", FAMILIES)
def test_save_then_load_is_bit_exact(family, saved):
    path, model = saved(family)
    loaded = registry.family_module(family).load(path)
    got_family, _, through_registry = registry.build_from_file(path)
    assert got_family == family
    expected = model.state_dict()
    for candidate in (loaded, through_registry):
        assert type(candidate) is type(model)
        assert not candidate.training and not any(p.requires_grad for p in candidate.parameters())
        state = candidate.state_dict()
        assert list(state) == list(expected)
        for key, value in expected.items():
            assert not state[key].is_meta and torch.equal(state[key], value), key


@pytest.mark.parametrize("family", FAMILIES)
def test_a_file_of_another_family_is_refused_by_name(family, saved, tmp_path):
    path, _ = saved(family)
    _, config, state = load_checkpoint(path)
    other = "renderer" if family != "renderer" else "gid"
    relabelled = tmp_path / "other.safetensors"
    save_checkpoint(relabelled, state, other, config)
    with pytest.raises(CheckpointError, match=f"other.safetensors: a '{other}' checkpoint, expected"):
        registry.family_module(family).load(relabelled)


@pytest.mark.parametrize("family", FAMILIES)
def test_truncated_and_corrupt_files_are_refused(family, saved, tmp_path):
    path, _ = saved(family)
    data = path.read_bytes()
    module = registry.family_module(family)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.safetensors: not a readable .safetensors file"):
        module.load(truncated)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(struct.pack("<Q", 1 << 40) + data[8:])  # a header length beyond the file
    with pytest.raises(CheckpointError, match="corrupt.safetensors: not a readable"):
        module.load(corrupt)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(data[:8] + b"\x00" * (len(data) - 8))
    with pytest.raises(CheckpointError, match="not a readable"):
        registry.build_from_file(garbage)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_tiny_file_asking_for_a_huge_model_is_refused_fast(family, tmp_path):
    hostile = tmp_path / "hostile.safetensors"
    save_checkpoint(hostile, {"x": torch.zeros(1)}, family, BEYOND_LIMITS[family])
    assert hostile.stat().st_size < 1024
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"config in its metadata is invalid .*must be an integer in \[0?1?, "):
        registry.build_from_file(hostile)
    assert time.perf_counter() - started < 1.0  # refused by the limits before anything is built

    at_limits = tmp_path / "at_limits.safetensors"
    save_checkpoint(at_limits, {"x": torch.zeros(1)}, family, AT_LIMITS[family])
    before = _rss_mb()
    with pytest.raises(CheckpointError, match="the file does not match its config: .* missing keys"):
        registry.build_from_file(at_limits)
    assert _rss_mb() - before < 100  # built on the meta device: billions of parameters, no memory


@pytest.mark.parametrize("family", FAMILIES)
def test_versions_that_are_not_numbers_or_too_new_are_named(family, saved, tmp_path):
    path, _ = saved(family)
    _, config, state = load_checkpoint(path)
    module = registry.family_module(family)
    odd = tmp_path / "odd.safetensors"
    save_checkpoint(odd, state, family, config, version="one")
    with pytest.raises(CheckpointError, match="odd.safetensors: its 'imagedynamics.version' version must be an "
                                              "integer, got 'one'"):
        module.load(odd)
    newer = tmp_path / "newer.safetensors"
    save_checkpoint(newer, state, family, config, version=module.VERSION + 1)
    with pytest.raises(CheckpointError, match="newer than this code"):
        module.load(newer)
    inner = json.loads(json.dumps(config))
    target = inner.get("model", inner)
    if "version" in target:  # the config's own version (GID, LVMM, renderer)
        target["version"] = "2b"
        bad = tmp_path / "bad_config_version.safetensors"
        save_checkpoint(bad, state, family, inner)
        with pytest.raises(CheckpointError, match="config version must be an integer, got '2b'"):
            module.load(bad)
