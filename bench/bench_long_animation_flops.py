"""Benchmark: the long-animation additions' cost on a full-size Stable Video Diffusion, against SVD alone.

Run:  .venv/bin/python bench/bench_long_animation_flops.py      (about 20 s on a 2-core CPU; no GPU, no weights)

In-process with ComfyUI's modules from ``.host/ComfyUI`` (no server): SVD's U-Net is built from ComfyUI's own
classes at the released shape (``comfy.supported_models.SVD_img2vid``: 320 channels, multipliers 1, 2, 4, 4, two
ResBlocks per level, ``transformer_depth`` [1, 1, 1, 1, 1, 1, 0, 0], 1024-wide context) **on the meta device** (no
memory, no weights), the additions of ``LongAnimationConfig.preset(...)`` are installed in it with
``models.long_animation.attach.install`` (the trainer's path; ComfyUI's patches compute the same), and one forward
of a clip is counted with torch's ``FlopCounterMode`` (matrix multiplications, convolutions, attention), with and
without the additions. Printed: SVD's parameters, whether the default ``SVDFit`` is SVD's (so the paper-size
additions fit a real svd / svd_xt file), the forward TFLOP per clip of SVD and of SVD + additions, their ratio, and
the training compute at the paper's setting and a small one (a training step ~ 2 forwards: the backward pass
through the frozen SVD computes input gradients only, ~1 forward; gradient checkpointing adds a third).
"""
from __future__ import annotations

import argparse
import copy
import pathlib
import sys
import types

ROOT = pathlib.Path(__file__).resolve().parents[1]
A100 = 312e12  # bf16 dense peak, FLOP/s


def _setup():
    sys.path.insert(0, str(ROOT / ".host" / "ComfyUI"))
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from comfy.cli_args import args

    args.cpu = True
    args.use_pytorch_cross_attention = True          # ComfyUI's other kernels ask the device for free memory
    if "imagedynamics" not in sys.modules:
        package = types.ModuleType("imagedynamics")
        package.__path__ = [str(ROOT)]
        sys.modules["imagedynamics"] = package


def svd_unet_on_meta():
    import comfy.supported_models
    import torch
    from tiny_svd import UNET

    unet = copy.deepcopy(UNET)
    unet.update(model_channels=320, num_res_blocks=[2] * 4, channel_mult=[1, 2, 4, 4],
                transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
                transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],   # ComfyUI lists output blocks last first
                context_dim=1024)
    with torch.device("meta"):
        return comfy.supported_models.SVD_img2vid(unet).get_model({}).diffusion_model


def forward_flops(unet, frames: int, height: int, width: int, options: dict) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    h, w = height // 8, width // 8
    with torch.device("meta"):
        x, t = torch.zeros(frames, 8, h, w), torch.zeros(frames)
        context, y = torch.zeros(frames, 1, 1024), torch.zeros(frames, 768)
        indicator = torch.zeros(1, frames)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        unet(x, t, context, y, num_video_frames=frames, image_only_indicator=indicator, transformer_options=options)
    return float(counter.get_total_flops())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    _setup()
    import torch

    from imagedynamics.models.long_animation.attach import MotionConditioning, fit_from_unet, install
    from imagedynamics.models.long_animation.config import LongAnimationConfig
    from imagedynamics.models.long_animation.model import LongAnimationModel, parameter_counts

    unet = svd_unet_on_meta()
    fit = fit_from_unet(unet)
    print(f"SVD U-Net: {sum(p.numel() for p in unet.parameters()) / 1e9:.2f} G parameters; the default SVDFit is "
          f"SVD's: {fit == LongAnimationConfig().svd}")
    settings = {"paper": (25, 512, 512, 4, 100_000, 2), "small": (14, 320, 512, 1, 20_000, 1)}
    for preset, (frames, height, width, batch, steps, gpus) in settings.items():
        with torch.device("meta"):
            additions = LongAnimationModel(LongAnimationConfig.preset(preset))
            flows = torch.zeros(1, 2, height, width)
        base = forward_flops(unet, frames, height, width, {})
        conditioning = MotionConditioning(additions, flows, 3.0)
        installed = install(unet, additions, conditioning)
        both = forward_flops(unet, frames, height, width, conditioning.transformer_options())
        installed.remove()
        counts = parameter_counts(additions)
        trained = (counts["total"] - counts["refiner"]) / 1e6
        total = 2 * both * batch * steps
        hours = total / (A100 * gpus) / 3600
        print(f"{preset}: {frames} frames {width}x{height}: SVD {base / 1e12:.1f} TFLOP per clip forward, with the "
              f"additions {both / 1e12:.1f} ({both / base:.3f}x); {trained:.1f} M trained parameters; training "
              f"{steps} steps x batch {batch} ~ {total / 1e18:.1f} EFLOP = {hours:.1f} h on {gpus} A100(s) at the "
              f"bf16 peak ({hours / 0.35:.1f} h at 35 %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
