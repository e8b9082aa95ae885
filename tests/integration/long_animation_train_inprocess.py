"""train/long_animation.py on a tiny SVD built from ComfyUI's own classes (``tiny_svd.py``), in a subprocess of
tests/integration/test_integration_long_animation.py (ComfyUI never enters the pytest process); prints one JSON
object.

The backbone handed to the trainer: the tiny SVD's U-Net (frozen), a pixel-space stand-in for the VAE (the frames
average-pooled 8 x 8, RGB and grey scaled to [-1, 1]: 4 latent channels), a fixed random projection of the pooled
first frame as the CLIP-vision embedding, and the SVD model's own added-time embedder. The data: synthetic pans
(``tests/media.py``), 48 x 48 frames, 5-frame clips. Measured:

- ``losses``: the logged losses of a 6-step run; ``changed``: max |trained - fresh| over the additions' trainable
  weights (the LoRA ``up`` and the zero-initialised outputs moved), ``refiner_unchanged``: T is not trained here;
- ``resumed_equal``: a 3 + 3-step run resumed from its saved state ends with bit-identical weights and log;
- ``unet_restored``: the U-Net's own state dict after training equals the one before (frozen, additions removed);
- ``refiner_kept``: training again into an existing file keeps its T (trained first by train/refiner.py);
- ``loaded_family`` and ``loads_on_svd``: the output file goes through the registry and its additions patch the
  tiny SVD MODEL with ComfyUI's patches, sampling something different from the bare SVD.
"""
from __future__ import annotations

import json
import math
import pathlib
import tempfile

from inprocess import setup_host

ARGS = ["--preset", "tiny", "--size", "48x48", "--num-frames", "5", "--max-frames-per-video", "10", "--batch", "2",
        "--log-every", "1", "--lr", "1e-3", "--field", "mean"]


def backbone(model):
    """The :class:`~train.long_animation.SVDBackbone` of the tiny SVD MODEL (module docstring)."""
    import torch
    import torch.nn.functional as F
    from tiny_svd import CONTEXT

    from imagedynamics.train.long_animation import SVDBackbone

    projection = torch.randn(3 * 6 * 6, CONTEXT, generator=torch.Generator().manual_seed(9)) / 10

    def encode(frames):
        pooled = F.avg_pool2d(frames, 8)
        return torch.cat([pooled, pooled.mean(1, keepdim=True)], 1) * 2 - 1

    def embed_image(image):
        pooled = F.adaptive_avg_pool2d(image, (6, 6)).flatten(1)
        return (pooled @ projection.to(pooled))[:, None]

    embedder = model.model.embedder

    def added_time(fps, bucket, augmentation):
        return torch.cat([embedder(fps.float()), embedder(bucket.float()), embedder(augmentation.float())], dim=1)

    return SVDBackbone(model.model.diffusion_model, encode, embed_image, added_time)


def main() -> dict:
    setup_host()
    import comfy.sample
    import torch
    from inprocess import ModelHolder
    from media import write_translation_video
    from tiny_svd import CONTEXT, tiny_svd

    from imagedynamics.models import registry
    from imagedynamics.models.long_animation.config import tiny_config
    from imagedynamics.models.long_animation.model import LongAnimationModel
    from imagedynamics.nodes.motion.long_animation_patch import patch_svd
    from imagedynamics.train.common import load_phase_weights, read_log
    from imagedynamics.train.long_animation import VideoModelTrainee
    from imagedynamics.train.long_animation import main as train

    torch.set_num_threads(1)
    model = tiny_svd()
    unet = model.model.diffusion_model
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    svd = backbone(model)
    tmp = pathlib.Path(tempfile.mkdtemp())
    videos = [write_translation_video(tmp / f"pan{i}.avi", (s * math.cos(a), s * math.sin(a)), size=48, frames=10,
                                      seed=i) for i, (s, a) in enumerate([(1.0, 0.3), (2.0, 2.2), (1.5, 4.0)])]

    def run(name, *extra):
        out, work = tmp / f"{name}.safetensors", tmp / f"{name}.work"
        code = train(["--videos", *map(str, videos), "--out", str(out), "--work-dir", str(work), *ARGS, *extra],
                     backbone=svd)
        assert code == 0
        return out, work

    out, work = run("full", "--steps", "6")
    losses = [float(row["loss"]) for row in read_log(work / "log.csv")]
    _, work_a = run("split", "--steps", "6", "--stop-after", "3")
    _, work_b = run("split", "--steps", "6", "--resume")
    full_w, split_w = load_phase_weights(work / "state" / "video_model.pt"), load_phase_weights(
        work_b / "state" / "video_model.pt")
    resumed_equal = list(full_w) == list(split_w) and all(torch.equal(full_w[k], split_w[k]) for k in full_w)
    resumed_equal = resumed_equal and [r["loss"] for r in read_log(work / "log.csv")] == [
        r["loss"] for r in read_log(work_b / "log.csv")]

    family, _, loaded = registry.build_from_file(out)
    torch.manual_seed(0)
    fresh = LongAnimationModel(tiny_config(loaded.config.svd))
    fresh_state = fresh.state_dict()
    trainable = {n for n, _ in loaded.named_parameters() if not n.startswith("refiner.")}
    changed = max((loaded.state_dict()[k] - fresh_state[k]).abs().max().item() for k in trainable
                  if "up" in k.split(".") or "to_out" in k or "linear_2" in k)
    refiner_unchanged = all(torch.equal(loaded.state_dict()[k], fresh_state[k]) for k in fresh_state
                            if k.startswith("refiner."))
    after = unet.state_dict()
    unet_restored = set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)

    # the trainee's batch keys: motion bucket 127 by default, field jitter in training mode only (same noise; the
    # additions have no dropout, so training mode differs by the jitter alone), on randomised additions
    from long_animation_inprocess import _randomise

    trainee = VideoModelTrainee(_randomise(LongAnimationModel(tiny_config(loaded.config.svd)), 5), svd, "frames",
                                field_jitter=1.0)
    g = torch.Generator().manual_seed(3)
    data = {"frames": torch.rand(2, 5, 3, 48, 48, generator=g), "flows": torch.tensor([1.5, -0.5]).view(1, 1, 2, 1, 1).expand(2, 4, 2, 48, 48).clone(),
            "strength": torch.tensor([1.0, 2.0])}

    def loss_of(extra: dict, training: bool) -> float:
        trainee.train(training)
        torch.manual_seed(0)
        with torch.no_grad():
            return float(trainee(dict(data, **extra))[0])

    plain = loss_of({}, False)
    keys = {"bucket_127_is_default": loss_of({"motion_bucket": torch.full((2,), 127.0)}, False) == plain,
            "bucket_30_differs": abs(loss_of({"motion_bucket": torch.full((2,), 30.0)}, False) - plain),
            "eval_repeats": loss_of({}, False) == plain,
            "jitter_differs": abs(loss_of({}, True) - plain)}
    trainee.remove()

    # T trained first (here: perturbed in the file) is kept when the video model is trained into the same file
    from imagedynamics.models.long_animation import checkpoint

    with torch.no_grad():
        for p in loaded.refiner.parameters():
            p.add_(0.01)
    checkpoint.save(out, loaded)
    kept = {k: v.clone() for k, v in loaded.refiner.state_dict().items()}
    code = train(["--videos", *map(str, videos), "--out", str(out), "--work-dir", str(tmp / "again.work"), *ARGS,
                  "--steps", "1"], backbone=svd)
    _, _, again = registry.build_from_file(out)
    refiner_kept = code == 0 and all(torch.equal(again.refiner.state_dict()[k], v) for k, v in kept.items())

    flows = torch.zeros(1, 2, 48, 48)
    flows[:, 0] = 1.5
    noise = torch.randn(5, 4, 6, 6, generator=torch.Generator().manual_seed(1))
    extra = {"motion_bucket_id": 127, "fps": 6, "augmentation_level": 0.0}
    latent = torch.randn(1, 4, 6, 6)
    positive = [[torch.randn(1, 1, CONTEXT), dict(extra, concat_latent_image=latent)]]
    negative = [[torch.zeros(1, 1, CONTEXT), dict(extra, concat_latent_image=torch.zeros_like(latent))]]

    def sample(m):
        return comfy.sample.sample(m, noise, 2, 2.0, "euler", "karras", positive, negative, torch.zeros(5, 4, 6, 6),
                                   disable_pbar=True, seed=0).float()

    bare = sample(model)
    patched = sample(patch_svd(model, ModelHolder(loaded), flows, 1.5, "LongAnimationMotion"))

    return {"trainee_keys": keys, "losses": losses, "resumed_equal": bool(resumed_equal), "loaded_family": family,
            "changed": changed, "refiner_unchanged": bool(refiner_unchanged), "unet_restored": bool(unet_restored),
            "loads_on_svd": (patched - bare).abs().max().item(), "refiner_kept": bool(refiner_kept)}


if __name__ == "__main__":
    print("RESULT " + json.dumps(main()))
