"""Example graphs of the learned GID motion prior: sample, and sample a seamless loop."""
from __future__ import annotations

from workflow_format import Node, Workflow

from .training_free import picture, save

# The tests train this tiny model in seconds; users pick their own trained checkpoint.
GID_MODEL = "gid_tiny.safetensors"

ABOUT = """
**Spectral Volume Sampler** (`model`) samples a spectral volume (GID: K temporal frequencies per pixel, here 4 at the
tiny model's 16-frame period) for the picture from a GID motion prior trained on videos (**Load Motion Model**),
by latent diffusion with classifier-free guidance; the mask keeps the motion on the flag. **Spectrum To Motion**
plays it at half speed (`slow_motion` 2), **Softmax Splat Render** makes the frames."""
LOOP = """
**Loop Guidance** (GID's motion self-guidance) steers every denoising step so that the two frames after the loop's
last are its first two again (position and velocity): the clip loops with no duplicated frame and no hold at the
seam. Over the model's own period (`num_frames` 0, as here) the spectral motion loops exactly and there is nothing
to guide; set `num_frames` (and Spectrum To Motion's length) for a loop of another length. `weight` 0 = GID's
default u."""


def _gid(loop: bool) -> Workflow:
    name = "gid_seamless_loop" if loop else "gid_sample"
    nodes = [
        picture(),
        Node(2, "LoadMotionModel", {"model_name": GID_MODEL}),
        Node(3, "SpectralVolumeSampler", {"source": "model", "num_frequencies": 4, "period_frames": 16,
                                          "fps": 30.0, "strength": 1.0, "seed": 11, "steps": 8, "cfg": 1.75},
             {"image": (1, 0), "mask": (1, 1), "model": (2, 0), **({"guidance": (6, 0)} if loop else {})}),
        Node(4, "SpectrumToMotion", {"num_frames": 32, "slow_motion": 2.0}, {"spectrum": (3, 0)}),
        Node(5, "SoftmaxSplatRender", {}, {"image": (1, 0), "motion": (4, 0)}),
        save(7, 5, name),
    ]
    if loop:
        nodes.append(Node(6, "LoopGuidance", {"weight": 0.0, "recurrences": 2, "cfg": 1.75}))
    title = "GID: a seamless loop from a trained motion prior" if loop else "GID: motion sampled from a trained prior"
    return Workflow(title, ABOUT + ("\n" + LOOP if loop else ""), nodes)


WORKFLOWS = {"gid_sample": lambda: _gid(False), "gid_seamless_loop": lambda: _gid(True)}
