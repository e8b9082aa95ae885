"""Does a tiny long-animation model trained by the suite follow arrows? (issue 16) Shared by
``bench/bench_long_animation_arrows.py``, tests/integration/test_integration_long_animation.py and
test_integration_long_animation_arrows.py (run as a subprocess there, :func:`run`: ComfyUI's modules never enter
the pytest process); prints one JSON object.

The pieces (by default at 64 x 64 pixels, 8 x 8 latents, 5-frame clips; :func:`main` takes the frame size, the
clip length, the speeds and the training as options):

- **Data**: synthetic translations of smooth periodic colour textures (a few integer-frequency sinusoids per
  channel, wavelengths 32-64 px, so a translation by any sub-pixel amount is exact and never runs out of
  content), either the whole frame panning or the texture flowing through a fixed rectangle (a cinemagraph-like
  region, the rest still), in a random direction at 2-6 px/frame (0.25-0.75 latent px/frame); the true flow
  (v inside the moving region, 0 outside) is the conditioning field and M_s (Eq. 8) its mean length (options:
  the field scaled at random by the trainee (``jitter``, the trainer's ``--field-jitter``), scaled to one length, or
  the rough field of a few arrows sampled from it, with M_s still the true one).
- **Stand-in VAE**: encode = the frame average-pooled 8 x 8 (RGB and grey: 4 channels, centred and scaled so
  that the latents x SVD's 0.18215 have a standard deviation near 1, as SVD's VAE gives), decode = its RGB
  channels upsampled bicubically; the CLIP-vision embedding a fixed random projection of the
  pooled first frame (as ``long_animation_train_inprocess.py``).
- **Tiny SVD** (``tiny_svd.py``: ComfyUI's own SVD classes at 32 / 64 channels, ``group_channels`` per GroupNorm
  group when given) given a video prior first
  (``base_steps`` of SVD's own objective on the same translations, every U-Net weight trained, no additions:
  the stand-in for the pretrained SVD a user has), then frozen while ``train.long_animation.VideoModelTrainee``
  (the pack's training step: motion encoder, Eq. 4 attention, strength embedding, LoRA) trains the additions;
  or (``joint``) no prior and every SVD weight trained with the additions (what the suite's test does).
- **Measurement**: ComfyUI's own sampler (euler, karras, cfg 1) on the MODEL patched by the node's
  ``patch_svd``, the latents decoded, OpenCV DIS flow between consecutive decoded frames, its mean over a region.
"""
from __future__ import annotations

import json
import math
import sys
import time

from inprocess import ModelHolder, setup_host

SIZE, LATENT, FRAMES = 64, 8, 5
SPEEDS = (2.0, 6.0)          # px/frame at 64 px
FPS = 7.0
LATENT_GAIN = 5.0 / 0.18215  # raw latents x SVD's 0.18215 have std ~1 (the textures' pooled std is ~0.2), as SVD's


def textures(count: int, generator, waves: int = 6):
    """``count`` periodic RGB textures as sinusoid parameters: (k [count, 3, waves, 2] cycles per frame,
    phase [count, 3, waves], amplitude [count, 3, waves]). |k| <= SIZE / 32 per axis, so wavelengths stay >= 32 px
    (4 latent pixels: above the stand-in VAE's Nyquist limit at any size)."""
    import torch

    top = max(1, SIZE // 32)
    k = torch.randint(-top, top + 1, (count, 3, waves, 2), generator=generator).float()
    zero = (k == 0).all(-1)
    k[..., 0] = torch.where(zero, torch.ones_like(k[..., 0]), k[..., 0])
    phase = torch.rand(count, 3, waves, generator=generator) * 2 * math.pi
    amp = 0.08 + 0.08 * torch.rand(count, 3, waves, generator=generator)
    return k, phase, amp


def render(tex, shifts):
    """Frames of the textures shifted by ``shifts`` [count, F, 2] px (content at p moves to p + shift):
    [count, F, 3, SIZE, SIZE] in [0, 1]."""
    import torch

    k, phase, amp = tex
    coords = torch.arange(SIZE).float()
    y, x = torch.meshgrid(coords, coords, indexing="ij")                        # [S, S]
    sx = x[None, None, None, None] - shifts[:, :, None, None, 0, None, None]    # [n, F, 1, 1, S, S]
    sy = y[None, None, None, None] - shifts[:, :, None, None, 1, None, None]
    arg = 2 * math.pi * (k[:, None, :, :, 0, None, None] * sx + k[:, None, :, :, 1, None, None] * sy) / SIZE
    waves = amp[:, None, :, :, None, None] * torch.cos(arg + phase[:, None, :, :, None, None])
    return (0.5 + waves.sum(3)).clamp(0, 1)


def batch(count: int, generator, region_share: float = 0.5, rough: int = 0, field_speed: float = 0.0):
    """A training batch: ``frames`` [B, F, 3, S, S], ``flows`` [B, F - 1, 2, S, S] (true; with
    ``field_speed`` > 0 every moving pixel's vector scaled to that length (px/frame), so that the field tells where
    and which way and only M_s how fast; with ``rough`` > 0 each clip's field is the rough field of 1 .. ``rough``
    arrows sampled from its true flow, :func:`rough_flows`), ``strength`` [B] M_s of the true flow."""
    import torch

    from imagedynamics.ops.motion_strength import motion_strength

    tex = textures(count, generator)
    angle = torch.rand(count, generator=generator) * 2 * math.pi
    speed = SPEEDS[0] + (SPEEDS[1] - SPEEDS[0]) * torch.rand(count, generator=generator)
    v = torch.stack([angle.cos(), angle.sin()], 1) * speed[:, None]              # [B, 2]
    steps = torch.arange(FRAMES).float()
    moving = render(tex, v[:, None] * steps[None, :, None])                      # [B, F, 3, S, S]
    still = render(tex, torch.zeros(count, 1, 2))                                # [B, 1, 3, S, S]
    mask = torch.ones(count, 1, 1, SIZE, SIZE)
    for i in range(count):
        if float(torch.rand((), generator=generator)) < region_share:  # a rectangle on the latent grid
            low, high = max(2, 3 * LATENT // 8), 6 * LATENT // 8                  # 3 .. 6 cells at 64 px
            h = int(torch.randint(low, high + 1, (), generator=generator)) * 8
            w = int(torch.randint(low, high + 1, (), generator=generator)) * 8
            top = int(torch.randint(0, (SIZE - h) // 8 + 1, (), generator=generator)) * 8
            left = int(torch.randint(0, (SIZE - w) // 8 + 1, (), generator=generator)) * 8
            mask[i] = 0
            mask[i, ..., top:top + h, left:left + w] = 1
    frames = mask * moving + (1 - mask) * still
    flows = (v[:, None, :, None, None] * mask).expand(count, FRAMES - 1, 2, SIZE, SIZE).contiguous()
    strength = torch.stack([motion_strength(f) for f in flows])
    if field_speed:
        flows = flows * (field_speed / speed[:, None, None, None, None])
    if rough:
        flows = rough_flows(flows, rough, generator)
    return {"frames": frames, "flows": flows, "strength": strength, "fps": torch.full((count,), FPS)}


def rough_flows(flows, arrows: int, generator):
    """What a user's arrows give instead of the true flow, as T's training pairs make it
    (``train.long_animation_data``): per clip 1 .. ``arrows`` arrows sampled from its flow (frame 0's; the clips
    are static fields) and their Gaussian field (Eqs. 5-7, sigma 170 px at 512 px), whose length depends on how many
    arrows there are and where, not on the speed alone. ``flows`` [B, F - 1, 2, S, S] px/frame -> the same shape."""
    import torch

    from imagedynamics.train.long_animation_data import rough_field, sample_arrows

    out = torch.empty_like(flows)
    for i in range(flows.shape[0]):
        count = int(torch.randint(1, arrows + 1, (), generator=generator))
        field = rough_field(sample_arrows(flows[i, 0], count, generator=generator), SIZE, SIZE)
        out[i] = field[None]
    return out


def backbone(model, context: int):
    """The :class:`~train.long_animation.SVDBackbone` of the tiny SVD MODEL (module docstring), and decode."""
    import torch
    import torch.nn.functional as F

    from imagedynamics.train.long_animation import SVDBackbone

    projection = torch.randn(3 * 4 * 4, context, generator=torch.Generator().manual_seed(9)) / 5

    def embed_image(image):
        pooled = F.adaptive_avg_pool2d(image, (4, 4)).flatten(1)
        return (pooled @ projection.to(pooled))[:, None]

    embedder = model.model.embedder

    def added_time(fps, bucket, augmentation):
        return torch.cat([embedder(fps.float()), embedder(bucket.float()), embedder(augmentation.float())], dim=1)

    return SVDBackbone(model.model.diffusion_model, encode, embed_image, added_time)


def encode(frames):
    """[N, 3, 8h, 8w] in [0, 1] -> [N, 4, h, w] raw latents (the stand-in VAE's encoder)."""
    import torch
    import torch.nn.functional as F

    pooled = F.avg_pool2d(frames, 8)
    return (torch.cat([pooled, pooled.mean(1, keepdim=True)], 1) - 0.5) * LATENT_GAIN


def decode(latents):
    """[F, 4, h, w] raw latents -> [F, 3, 8h, 8w] in [0, 1] (the stand-in VAE's decoder)."""
    import torch.nn.functional as F

    return F.interpolate(latents[:, :3] / LATENT_GAIN + 0.5, scale_factor=8, mode="bicubic", align_corners=False).clamp(0, 1)


def train(trainee, parameters, steps: int, lr: float, batch_size: int, seed: int, region_share: float = 0.5,
          rough: int = 0, decay: bool = False, field_speed: float = 0.0, bucket_per_speed: float = 0.0):
    """AdamW on ``trainee(batch)`` (SVD's objective) for ``steps`` (with ``decay`` the learning rate falls linearly
    from ``lr`` to 0 over them; with ``bucket_per_speed`` > 0 SVD's motion bucket id is each clip's M_s times it, as
    SVD was trained with a bucket measured from optical flow, else 127); returns the losses."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    optimiser = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.0, fused=True)  # fused: ~10 % of a step less
    losses = []
    for step in range(steps):
        if decay:
            optimiser.param_groups[0]["lr"] = lr * (1 - step / steps)
        data = batch(batch_size, generator, region_share, rough, field_speed)
        if bucket_per_speed:
            data["motion_bucket"] = data["strength"] * bucket_per_speed
        loss, _ = trainee(data)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimiser.step()
        losses.append(float(loss.detach()))
    return losses


def held_out_losses(trainee, batches: int = 8, batch_size: int = 4) -> dict:
    """Mean denoising loss on held-out batches with the true field, the reversed one and none (same noise; the
    trainee in eval mode: no field jitter)."""
    import torch

    generator = torch.Generator().manual_seed(999)
    sums = {"true": 0.0, "reversed": 0.0, "zero": 0.0}
    trainee.eval()
    with torch.no_grad():
        for b in range(batches):
            data = batch(batch_size, generator)
            for name, factor in (("true", 1.0), ("reversed", -1.0), ("zero", 0.0)):
                torch.manual_seed(10_000 + b)
                loss, _ = trainee(dict(data, flows=data["flows"] * factor))
                sums[name] += float(loss) / batches
    trainee.train()
    return sums


def measure(model, holder, picture, field, strength: float, context_of, encode, seed: int = 0, steps: int = 8):
    """Sample with ComfyUI (euler, karras, cfg 1) on ``patch_svd(model, holder, field, strength)``, decode, and
    return the DIS flows between consecutive decoded frames [F - 1, 2, S, S] (px/frame)."""
    import comfy.sample
    import torch

    from imagedynamics.nodes.motion.long_animation_patch import patch_svd
    from imagedynamics.ops.optical_flow import dis_flow

    latent = encode(picture)
    extra = {"motion_bucket_id": 127, "fps": int(FPS), "augmentation_level": 0.0}
    positive = [[context_of(picture), dict(extra, concat_latent_image=latent)]]
    negative = [[torch.zeros_like(positive[0][0]), dict(extra, concat_latent_image=torch.zeros_like(latent))]]
    noise = torch.randn(FRAMES, 4, LATENT, LATENT, generator=torch.Generator().manual_seed(seed))
    patched = model if holder is None else patch_svd(model, holder, field, strength, "LongAnimationMotion")
    out = comfy.sample.sample(patched, noise, steps, 1.0, "euler", "karras", positive, negative,
                              torch.zeros(FRAMES, 4, LATENT, LATENT), disable_pbar=True, seed=seed).float()
    frames = decode(out)
    return torch.stack([dis_flow(frames[k], frames[k + 1], "medium") for k in range(FRAMES - 1)])


def main(base_steps: int = 200, steps: int = 200, batch_size: int = 4, base_lr: float = 1e-3, lr: float = 1e-3,
         seeds: int = 2, threads: int = 1, joint: bool = False, jitter: float = 0.0, frames: int = FRAMES,
         speeds: tuple[float, float] = SPEEDS, motion_input: str | None = None, size: int = SIZE,
         sampler_steps: int = 8, held_out_batches: int = 8, rough: int = 0, seed: int = 2,
         decay: bool = False, field_speed: float = 0.0, region_share: float = 0.5, svd_channels: int = 32,
         group_channels: int | None = None, prior_bucket: bool = False) -> dict:
    """Train (``base_steps`` of the SVD alone at ``base_lr``, then ``steps`` of the additions at ``lr``, with the
    SVD's weights too when ``joint``), measure on ``seeds`` pictures, return the losses and the measurements
    (module docstring; ``jitter``: the trainee's ``field_jitter``, ``train.long_animation.jitter_factors``;
    ``rough``, ``field_speed``, ``frames``, ``speeds``: see :func:`batch`, clip length, px/frame range;
    ``motion_input``: the additions' ``LongAnimationConfig.motion_input``, None = the config's default;
    ``size``: frame side in px, a multiple of 16 (latents ``size / 8``); ``sampler_steps``: euler steps per
    sample; ``held_out_batches``: batches of 4 clips for :func:`held_out_losses`; ``seed``: the training data's;
    ``decay``: the additions' learning rate falls linearly to 0, :func:`train`; ``region_share``: the share of
    training clips flowing through a rectangle, the others panning; ``svd_channels``: the tiny SVD's width,
    ``tiny_svd.tiny_svd``; ``group_channels``: its GroupNorms' channels per group, None = ComfyUI's 32 groups;
    ``prior_bucket``: the video prior trained with SVD's motion bucket id following the clip's speed, 127 at 4 px/frame, as the released SVD
    was, so that the frozen SVD has a motion-amount path in its embedding))."""
    global FRAMES, SPEEDS, SIZE, LATENT
    FRAMES, SPEEDS = int(frames), tuple(speeds)
    SIZE, LATENT = int(size), int(size) // 8
    setup_host()
    import torch
    from tiny_svd import CONTEXT, tiny_svd

    from imagedynamics.models.long_animation.attach import fit_from_unet
    from imagedynamics.models.long_animation.config import tiny_config
    from imagedynamics.models.long_animation.model import LongAnimationModel
    from imagedynamics.train.long_animation import VideoModelTrainee

    torch.set_num_threads(threads)
    model = tiny_svd(channels=svd_channels, group_channels=group_channels)
    svd = backbone(model, CONTEXT)
    torch.manual_seed(0)
    config = tiny_config(fit_from_unet(svd.unet))
    if motion_input is not None:
        config = config.replace(motion_input=motion_input)
    additions = LongAnimationModel(config)
    trainee = VideoModelTrainee(additions, svd, "frames", field_jitter=jitter)
    unet = svd.unet
    result = {}
    t0 = time.perf_counter()
    if base_steps:
        unet.requires_grad_(True)
        base_params = [p for p in unet.parameters() if p.requires_grad]
        result["base_losses"] = train(trainee, base_params, base_steps, base_lr, batch_size, seed=1,
                                      bucket_per_speed=127.0 / (sum(SPEEDS) / 2) if prior_bucket else 0.0)
        unet.requires_grad_(False)
    result["base_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    params = trainee.video_parameters()
    if joint:
        unet.requires_grad_(True)
        params = params + list(unet.parameters())
    result["losses"] = train(trainee, params, steps, lr, batch_size, seed, region_share, rough=rough, decay=decay,
                             field_speed=field_speed)
    unet.requires_grad_(False)
    result["train_s"] = time.perf_counter() - t0
    result["held_out"] = held_out_losses(trainee, held_out_batches)
    trainee.remove()
    additions.eval()
    holder = ModelHolder(additions)

    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(123)
    tex = textures(seeds, g)
    pictures = render(tex, torch.zeros(seeds, 1, 2))[:, 0]                  # [n, 3, S, S]
    speed = sum(SPEEDS) / 2
    directions = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}
    measured = {}
    for name, (dx, dy) in directions.items():
        vals = []
        for i in range(seeds):
            field = torch.zeros(1, 2, SIZE, SIZE)
            field[:, 0], field[:, 1] = dx * speed, dy * speed
            flows = measure(model, holder, pictures[i:i + 1], field, speed, svd.embed_image, svd.encode, seed=i,
                            steps=sampler_steps)
            vals.append(flows.mean((0, 2, 3)))
        mean = torch.stack(vals).mean(0)
        cos = float(mean[0] * dx + mean[1] * dy) / max(float(mean.norm()), 1e-9)
        measured[name] = {"flow": [round(float(v), 3) for v in mean], "cos": round(cos, 3)}
    bare = []
    for i in range(seeds):
        bare.append(measure(model, None, pictures[i:i + 1], None, 0.0, svd.embed_image, svd.encode,
                            seed=i, steps=sampler_steps).mean((0, 2, 3)))
    measured["bare"] = {"flow": [round(float(v), 3) for v in torch.stack(bare).mean(0)]}
    mags, along = {}, {}
    for factor in (0.5, 1.0, 1.5):          # M_s 2, 4, 6 px/frame at the default speeds: the trained range
        vals, alongs = [], []
        for i in range(seeds):
            field = torch.zeros(1, 2, SIZE, SIZE)
            field[:, 0] = speed
            flows = measure(model, holder, pictures[i:i + 1], field, speed * factor, svd.embed_image, svd.encode,
                            seed=i, steps=sampler_steps)
            vals.append(float(flows.square().sum(1).sqrt().mean()))
            alongs.append(float(flows[:, 0].mean()))
        mags[str(factor)] = round(sum(vals) / len(vals), 3)
        along[str(factor)] = round(sum(alongs) / len(alongs), 3)
    measured["magnitude_by_strength"] = mags
    measured["along_by_strength"] = along
    # a region-limited arrow (the motion brush): right in the left half, nothing in the right half
    inside, outside = [], []
    for i in range(seeds):
        field = torch.zeros(1, 2, SIZE, SIZE)
        field[:, 0, :, :SIZE // 2] = speed
        flows = measure(model, holder, pictures[i:i + 1], field, speed / 2, svd.embed_image, svd.encode, seed=i,
                        steps=sampler_steps)
        edge, gap = SIZE // 16, SIZE // 8                # 4 px from the frame's edge, 8 px from the arrow's (64 px)
        inside.append(flows[..., edge:-edge, edge:SIZE // 2 - gap].mean((0, 2, 3)))
        outside.append(flows[..., edge:-edge, SIZE // 2 + gap:-edge].mean((0, 2, 3)))
    inside, outside = torch.stack(inside).mean(0), torch.stack(outside).mean(0)
    measured["region"] = {"inside": [round(float(v), 3) for v in inside],
                          "inside_cos": round(float(inside[0]) / max(float(inside.norm()), 1e-9), 3),
                          "outside": [round(float(v), 3) for v in outside]}
    result["measure_s"] = time.perf_counter() - t0
    result["measured"] = measured
    return result


def run(kwargs: dict, timeout: float = 900) -> dict:
    """:func:`main` (``kwargs``) in a subprocess with one torch thread (ComfyUI's modules never enter the caller's
    process); its result, or AssertionError with the end of its stderr."""
    import os
    import pathlib
    import subprocess

    here = pathlib.Path(__file__).resolve().parent
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(here / "long_animation_arrows.py"), json.dumps(kwargs)], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=here)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


if __name__ == "__main__":
    kwargs = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    print("RESULT " + json.dumps(main(**kwargs)))
