"""Train a motion model of the pack from your videos.

Usage::

    python scripts/train.py gid      --videos DIR --out ComfyUI/models/motion_models/gid.safetensors [...]
    python scripts/train.py lvmm     --videos DIR --out .../lvmm.safetensors [...]
    python scripts/train.py renderer --videos DIR --out .../renderer.safetensors [...]
    python scripts/train.py long_animation --videos DIR --svd .../checkpoints/svd_xt.safetensors
        --out .../long_animation.safetensors [...]   # the long-animation paper's additions to your SVD
    python scripts/train.py long_animation_refiner --videos DIR --out .../long_animation.safetensors [...]
    accelerate launch --multi_gpu --num_processes 8 scripts/train.py gid ...   # the same command on 8 GPUs
    accelerate config && accelerate launch scripts/train.py gid ...           # several machines

``python scripts/train.py <family> --help`` lists a family's options (the recipe flags are shared:
--lr-schedule, --warmup-steps, --ema-decay, --gradient-accumulation, --gradient-checkpointing, --validate-every,
--mixed-precision; see train/common.py). The trainers need accelerate, which the pack's runtime does not:
``pip install -r requirements-train.txt`` (or the ``train`` extra of pyproject.toml).
"""
from __future__ import annotations

import importlib
import importlib.util
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _package import import_pack  # noqa: E402

FAMILIES = ("gid", "lvmm", "renderer", "long_animation", "long_animation_refiner")
MODULES = {"long_animation_refiner": "refiner"}
"""Commands whose trainer module has another name (T of the long-animation paper: train/refiner.py)."""
HOST = pathlib.Path(__file__).resolve().parents[1] / ".host" / "ComfyUI"


def svd_backbone(path: str, device: str | None = None):
    """The frozen SVD of ``path`` for ``train.long_animation`` (its U-Net, VAE and CLIP-vision encoder), loaded
    with ComfyUI's own loader (``comfy.sd.load_checkpoint_guess_config``): the pack's .host/ComfyUI, or the ComfyUI
    this pack is installed in (``custom_nodes/<pack>``)."""
    import torch

    for candidate in (HOST, pathlib.Path(__file__).resolve().parents[3]):
        if (candidate / "comfy" / "sd.py").is_file() and str(candidate) not in sys.path:
            sys.path.insert(0, str(candidate))
            break
    try:
        import comfy.model_base
        import comfy.sd
    except ImportError as error:
        raise SystemExit(f"--svd needs ComfyUI (its loader reads the SVD file): {error}") from error
    from imagedynamics.train.long_animation import SVDBackbone

    model, _, vae, clip_vision = comfy.sd.load_checkpoint_guess_config(path, output_vae=True, output_clip=False,
                                                                       output_clipvision=True)[:4]
    if not isinstance(model.model, comfy.model_base.SVD_img2vid) or clip_vision is None:
        raise SystemExit(f"--svd {path}: not a Stable Video Diffusion img2vid checkpoint (svd / svd_xt)")
    unet = model.model.diffusion_model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    embedder = model.model.embedder

    def encode(frames):
        return vae.encode(frames.movedim(1, -1)).to(frames.device)

    def embed_image(image):
        return clip_vision.encode_image(image.movedim(1, -1)).image_embeds[:, None].to(image.device)

    def added_time(fps, bucket, augmentation):
        ids = [embedder(v.float().cpu()) for v in (fps, bucket, augmentation)]
        return torch.cat(ids, dim=1).to(fps.device)

    return SVDBackbone(unet, encode, embed_image, added_time, model.model.latent_format.scale_factor)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in FAMILIES:
        print(__doc__)
        return 2
    if importlib.util.find_spec("accelerate") is None:  # a training-only dependency, not in requirements.txt
        print("The trainers need accelerate: pip install -r requirements-train.txt (or pip install accelerate) "
              "in this Python environment.", file=sys.stderr)
        return 2
    import_pack()
    trainer = importlib.import_module(f"imagedynamics.train.{MODULES.get(argv[0], argv[0])}")
    if argv[0] == "long_animation" and "--help" not in argv and "-h" not in argv:
        args, _ = trainer.build_parser().parse_known_args(argv[1:])
        if not args.svd:
            print("long_animation needs --svd: the Stable Video Diffusion checkpoint the additions are for",
                  file=sys.stderr)
            return 2
        return int(trainer.main(argv[1:], backbone=svd_backbone(args.svd)) or 0)
    return int(trainer.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
