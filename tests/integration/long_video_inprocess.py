"""LongVideoReschedule's sampling in-process with ComfyUI's modules (no server), counting denoiser evaluations.

Run by tests/integration/test_integration_long_video.py as a subprocess (``python long_video_inprocess.py
<tiny cosmos file>``), so that ComfyUI's modules never enter the pytest process; prints one JSON object.

Evaluations are counted with a ``sampler_post_cfg_function`` on a clone of the MODEL (ComfyUI calls it once
per denoiser evaluation, whatever the cond / uncond batching). Two models, both real ComfyUI model objects:

* the tiny Cosmos-Predict2 (5-D video latent, rectified-flow sampling) loaded with ``comfy.sd`` from the file
  the integration tests give UNETLoader;
* a tiny image model: ``comfy.model_base.BaseModel`` with the SD 1.5 model config (eps prediction, discrete
  schedule, SD latent format with its 0.18215 scale) and a small convolutional network as its diffusion model:
  4-D latents whose batch is the frames (frame_dim 0).
"""
from __future__ import annotations

import json
import math
import os
import sys

from inprocess import HOST, setup_host


def tiny_image_model():
    """A 4-D eps-prediction ComfyUI MODEL: BaseModel(SD 1.5 config) around a 3-layer conv net (1024-wide text)."""
    import comfy.model_base
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models
    import torch

    class TinyImageNet(torch.nn.Module):
        def __init__(self, width: int = 16, context_dim: int = 1024, dtype=None, **_):
            super().__init__()
            self.width = width
            self.dtype = torch.float32
            self.conv_in = torch.nn.Conv2d(4, width, 3, padding=1)
            self.time = torch.nn.Linear(width, width)
            self.text = torch.nn.Linear(context_dim, width)
            self.conv_mid = torch.nn.Conv2d(width, width, 3, padding=1)
            self.conv_out = torch.nn.Conv2d(width, 4, 3, padding=1)

        def forward(self, x, timesteps=None, context=None, **_):
            half = self.width // 2
            freqs = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32) / half)
            angles = timesteps.float()[:, None] * freqs[None]
            emb = self.time(torch.cat([angles.sin(), angles.cos()], dim=1))
            h = self.conv_in(x) + emb[:, :, None, None] + self.text(context.mean(dim=1))[:, :, None, None]
            h = self.conv_mid(torch.nn.functional.silu(h))
            return self.conv_out(torch.nn.functional.silu(h))

    config = comfy.supported_models.SD15({"context_dim": 1024})
    config.set_inference_dtype(torch.float32, None)
    torch.manual_seed(0)
    base = comfy.model_base.BaseModel(config, model_type=comfy.model_base.ModelType.EPS, unet_model=TinyImageNet)
    device = comfy.model_management.get_torch_device()
    return comfy.model_patcher.ModelPatcher(base, load_device=device, offload_device=device)


class Counter:
    def __init__(self, stop_after: int | None = None):
        self.calls = 0
        self.stop_after = stop_after

    def __call__(self, args):
        import comfy.model_management

        self.calls += 1
        if self.stop_after is not None and self.calls == self.stop_after:
            comfy.model_management.interrupt_current_processing(True)
        return args["denoised"]


def run(model, latent, counter: Counter, **settings):
    from imagedynamics.nodes.motion.long_video import make_config, sample_long_video

    patched = model.clone()
    patched.set_model_sampler_post_cfg_function(counter)
    base = dict(gamma=0.8, omega=0.2, num_segments=5, overlap=0, crossfade=True, noise_prior="image", shuffle="frame")
    base.update({k: settings.pop(k) for k in list(settings) if k in base})
    sampling = dict(seed=7, steps=10, cfg=3.0, sampler_name="euler", scheduler="simple")
    sampling.update(settings)
    config = make_config("test", seed=sampling["seed"], **base)
    return sample_long_video(patched, *conds(), latent, config=config, **sampling)["samples"]


def conds():
    import torch

    g = torch.Generator().manual_seed(1)
    return [[torch.randn(1, 8, 1024, generator=g), {}]], [[torch.zeros(1, 8, 1024), {}]]


def main(cosmos_file: str) -> dict:
    setup_host()
    import comfy.model_management
    import comfy.sd
    import torch

    torch.set_num_threads(1)
    results: dict = {"video": {}, "image": {}}
    video = comfy.sd.load_diffusion_model(cosmos_file)
    video_latent = {"samples": torch.zeros(1, 16, 3, 2, 2)}
    cases = {
        "image_prior": dict(),
        "trajectory_prior": dict(noise_prior="trajectory"),
        "no_prior": dict(noise_prior="none"),
        "gamma_1": dict(gamma=1.0),
        "one_segment": dict(num_segments=1),
        "gamma_0.5_K3": dict(gamma=0.5, num_segments=3, steps=7),
        "ancestral": dict(sampler_name="euler_ancestral", num_segments=3),
        "gamma_0_K2": dict(gamma=0.0, num_segments=2, steps=4),
    }
    for name, settings in cases.items():
        counter = Counter()
        out = run(video, video_latent, counter, **dict(settings))
        results["video"][name] = {"calls": counter.calls, "shape": list(out.shape), "finite": bool(out.isfinite().all()),
                                  "settings": settings}

    counter = Counter(stop_after=12)
    try:
        run(video, video_latent, counter)
        results["interrupt"] = {"raised": None, "calls": counter.calls}
    except comfy.model_management.InterruptProcessingException as error:
        results["interrupt"] = {"raised": type(error).__name__, "calls": counter.calls}
    finally:
        comfy.model_management.interrupt_current_processing(False)

    image = tiny_image_model()
    image_latent = {"samples": torch.zeros(4, 4, 8, 8)}
    for name, settings in {"image_prior": dict(num_segments=3, gamma=0.75, steps=8),
                           "copies": dict(num_segments=3, gamma=0.75, steps=8, omega=0.0, shuffle="none",
                                          noise_prior="trajectory")}.items():
        counter = Counter()
        out = run(image, image_latent, counter, **dict(settings))
        segments = out.split(4, dim=0)
        results["image"][name] = {
            "calls": counter.calls, "shape": list(out.shape), "settings": settings,
            "segment_std": [float(s.std()) for s in segments],
            "max_diff_to_first": [float((s - segments[0]).abs().max()) for s in segments[1:]],
            "mean_diff_to_first": [float((s - segments[0]).abs().mean()) for s in segments[1:]],
        }
    return results


if __name__ == "__main__":
    os.chdir(HOST)
    print("RESULT " + json.dumps(main(sys.argv[1])))
