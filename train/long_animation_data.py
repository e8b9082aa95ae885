"""Training data of the long-animation paper's models from a folder of videos: clips, DIS flow, M_s, T's pairs.

"Controllable Longer Image Animation" trains its video model on 25-frame clips (its "Implements Details") with
RAFT flow and the global motion strength M_s (Eq. 8), and its refinement model T on pairs (dense field from
arrows -> realistic flow). RAFT's weights are not available here, so the flow is OpenCV's DIS
(``ops.optical_flow.dis_flow``, or the finer setting of ``train.renderer.measure_flow``).

Pipeline (one cache file per video in ``<work>/data``, named after the video and a hash of its path, size,
modification time and the settings, as the other trainers cache; rebuilt when any of them changes):

1. every video is read with OpenCV, centre-cropped to the training aspect and resized to ``width`` x ``height``
   (``train.video_io.read_video_cropped``; every ``frame_stride``'th frame, at most ``max_frames``);
2. it is cut into clips of ``num_frames`` frames (25, the paper's) starting every ``clip_every`` frames, never
   across a scene cut (``train.renderer.scene_cuts``);
3. for every frame pair (k, k + 1) inside a clip, the DIS flow F_{k->k+1} (pixels per frame; content at p in
   frame k is at p + F(p) in frame k + 1), and per clip M_s = mean |F_{k->k+1}| (``ops.motion_strength``);
4. frames are stored as uint8, flows as float16.

:class:`VideoClips` gives the video model's samples: ``frames`` [N, 3, H, W] in [0, 1], ``flows`` [N - 1, 2, H, W]
px/frame and ``strength`` (M_s, px/frame). :class:`RefinerPairs` gives T's: for a frame pair inside a clip,
(rough field [2, H, W], image [3, H, W] = frame k, real flow [2, H, W] = F_{k->k+1}), where the rough field is what
the user's arrows would give: a few points of the real flow (:func:`sample_arrows`) made dense by the paper's
Gaussian interpolation (Eqs. 5-7, ``ops.sparse_to_dense.gaussian_arrow_field``; sigma 170 px at 512 px, scaled with
the frame's long side; R = 0.05 px/frame).

Sampling (the paper does not describe how its training fields were made): R = 0.05 is Eq. 7's threshold, not a
sampling rate. Eq. 6 sums the Gaussians without normalising, so 5 % of the pixels as arrows would give fields
thousands of times the real flow, nothing like what a user draws; so each pair takes 1 .. ``max_arrows`` points
(uniformly many), drawn without replacement among the pixels that move by more than R, with probability
proportional to how far they move (users draw arrows on what moves), each an arrow from p to p + F(p). A still
pair (nothing above R) gets no arrow: its rough field is 0, and T learns to leave it still.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pathlib
from dataclasses import dataclass
from typing import Any

import torch

from ..ops.motion_strength import motion_strength
from ..ops.progress import ProgressFn, report
from ..ops.sparse_to_dense import gaussian_arrow_field
from ..ops.trajectories import Arrows

__all__ = ["CACHE_VERSION", "ClipSettings", "RefinerPairs", "RefinerSample", "VideoClips", "clip_flows",
           "clip_starts", "prepare_video", "prepare_videos", "rough_field", "sample_arrows"]

CACHE_VERSION = 1
PAPER_FRAMES = 25
PAPER_THRESHOLD = 0.05

logger = logging.getLogger(__name__)


@dataclass
class ClipSettings:
    """How videos become clips (part of the cache key: changing any field rebuilds the cache).

    Attributes:
        width, height: training frame size in pixels (each video centre-cropped to this aspect, then resized).
        num_frames: frames per clip (the paper trains on 25).
        clip_every: a clip starts every this many frames (``num_frames``: disjoint clips).
        frame_stride: use every n-th frame of a video.
        max_frames: frames read per video (after the stride).
        max_clips: clips kept per video (the first ones).
        flow_preset: DIS setting: ``ultrafast``, ``fast``, ``medium`` or ``fine`` (``train.renderer.measure_flow``).
    """

    width: int = 512
    height: int = 512
    num_frames: int = PAPER_FRAMES
    clip_every: int = PAPER_FRAMES
    frame_stride: int = 1
    max_frames: int = 300
    max_clips: int = 64
    flow_preset: str = "medium"

    def __post_init__(self) -> None:
        from .renderer import FLOW_PRESETS

        for name in ("width", "height", "num_frames", "clip_every", "frame_stride", "max_frames", "max_clips"):
            value = getattr(self, name)
            low = 2 if name == "num_frames" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if min(self.width, self.height) < 8:
            raise ValueError(f"clips must be at least 8 x 8 pixels, got {self.width} x {self.height}")
        if self.max_frames < self.num_frames:
            raise ValueError(f"max_frames ({self.max_frames}) must hold one clip of num_frames ({self.num_frames})")
        if self.flow_preset not in FLOW_PRESETS:
            raise ValueError(f"flow_preset must be one of {FLOW_PRESETS}, got {self.flow_preset!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ============================================================================================ clips and flows


def clip_starts(num_frames: int, clip_frames: int, every: int, cuts: list[int] = (), limit: int | None = None
                ) -> list[int]:
    """First frames of the clips of ``clip_frames`` frames, one every ``every`` frames, none across a scene cut
    (``cuts``: first frames of new shots), at most ``limit``.

    Example:
        >>> clip_starts(60, 25, 25)
        [0, 25]
        >>> clip_starts(60, 25, 10, cuts=[30])   # clips from 10 and 20 would span the cut
        [0, 30]
        >>> clip_starts(24, 25, 25)
        []
    """
    starts = []
    for s in range(0, int(num_frames) - int(clip_frames) + 1, max(1, int(every))):
        if any(s < c <= s + clip_frames - 1 for c in cuts):
            continue
        starts.append(s)
        if limit is not None and len(starts) >= limit:
            break
    return starts


def clip_flows(frames: torch.Tensor, preset: str = "medium", progress: ProgressFn | None = None) -> torch.Tensor:
    """Frame-to-frame DIS flows of a clip: [N, 3, H, W] in [0, 1] -> [N - 1, 2, H, W] float32 px/frame, flow k from
    frame k to frame k + 1 (content at p in frame k is at p + F_k(p) in frame k + 1)."""
    from .renderer import measure_flow

    if frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] < 2:
        raise ValueError(f"frames must be [N >= 2, 3, H, W], got {tuple(frames.shape)}")
    flows = torch.empty(frames.shape[0] - 1, 2, *frames.shape[-2:])
    for k in range(frames.shape[0] - 1):
        flows[k] = measure_flow(frames[k], frames[k + 1], preset)
        report(progress, k + 1, frames.shape[0] - 1)
    return flows


def _cache_name(path: pathlib.Path, settings: ClipSettings) -> str:
    stat = path.stat()
    key = json.dumps({"path": str(path.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns,
                      "settings": settings.to_dict(), "version": CACHE_VERSION}, sort_keys=True)
    return f"{path.stem}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.safetensors"


def prepare_video(path: str | os.PathLike, cache: str | os.PathLike, settings: ClipSettings) -> pathlib.Path:
    """Read one video, cut it into clips, measure their flows and M_s, and cache it all; return the cache file
    (reused when it exists).

    The file holds ``frames`` [F, 3, H, W] uint8 (the frames read), ``starts`` [C] int64 (first frame of every
    clip), ``flows`` [F - 1, 2, H, W] float16 (F_{t->t+1}; zeros for pairs in no clip), ``strengths`` [C] float32
    (M_s of every clip, px/frame, from the float32 flows), ``fps`` [1] and ``clip_frames`` [1] (N).

    Raises:
        ValueError: the video gives no clip of ``num_frames`` frames (too short, or cut into shorter shots).
    """
    from safetensors.torch import save_file

    from .renderer import scene_cuts
    from .video_io import read_video_cropped

    path, cache = pathlib.Path(path), pathlib.Path(cache)
    target = cache / _cache_name(path, settings)
    if target.exists():
        return target
    frames, fps = read_video_cropped(path, settings.width, settings.height, stride=settings.frame_stride,
                                     max_frames=settings.max_frames)
    starts = clip_starts(frames.shape[0], settings.num_frames, settings.clip_every, scene_cuts(frames),
                         settings.max_clips)
    if not starts:
        raise ValueError(f"{path.name}: {frames.shape[0]} frame(s) give no clip of {settings.num_frames} frames "
                         "within one shot")
    n = settings.num_frames
    used = sorted({s + k for s in starts for k in range(n - 1)})
    frames = frames[:max(used) + 2]
    flows = torch.zeros(frames.shape[0] - 1, 2, *frames.shape[-2:], dtype=torch.float16)
    full = {}
    from .renderer import measure_flow

    for t in used:
        full[t] = measure_flow(frames[t], frames[t + 1], settings.flow_preset)
        flows[t] = full[t].half()
    strengths = torch.stack([motion_strength(torch.stack([full[s + k] for k in range(n - 1)])) for s in starts])
    data = {"frames": (frames * 255.0).round().to(torch.uint8).contiguous(), "flows": flows,
            "starts": torch.tensor(starts, dtype=torch.int64), "strengths": strengths.float(),
            "fps": torch.tensor([float(fps)]), "clip_frames": torch.tensor([n], dtype=torch.int64)}
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".partial")
    save_file(data, str(tmp))
    os.replace(tmp, target)
    return target


def prepare_videos(videos: list[pathlib.Path], cache: pathlib.Path, settings: ClipSettings, accelerator=None
                   ) -> list[pathlib.Path]:
    """Cache files of every video that gives a clip (the others are skipped with a warning). With an accelerate
    ``accelerator``, every process prepares its share of the videos first, then all read every file.

    Raises:
        ValueError: no video gives a clip.
    """
    if accelerator is not None:
        for i, path in enumerate(videos):
            if i % accelerator.num_processes == accelerator.process_index:
                try:
                    prepare_video(path, cache, settings)
                except ValueError:
                    pass  # reported below, once
        accelerator.wait_for_everyone()
    files = []
    for path in videos:
        try:
            files.append(prepare_video(path, cache, settings))
        except ValueError as exc:
            logger.warning("skipped: %s", exc)
    if not files:
        raise ValueError(f"no video gives a clip of {settings.num_frames} frames within one shot (at "
                         f"{settings.width} x {settings.height}, stride {settings.frame_stride}); pass shorter "
                         "clips (--num-frames) or longer videos")
    return files


def _load(files: list[pathlib.Path]) -> list[dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    return [load_file(str(f)) for f in files]


class VideoClips(torch.utils.data.Dataset):
    """The video model's samples from cached videos (:func:`prepare_video`).

    Item i: ``{"frames": [N, 3, H, W] float32 in [0, 1], "flows": [N - 1, 2, H, W] float32 px/frame (F_{k->k+1}),
    "strength": 0-dim float32 M_s px/frame, "fps": 0-dim float32}``. With ``flip``, a random horizontal flip
    (probability 1/2, torch's global generator: the trainers seed it per item) flips the frames and flows and
    negates the flows' x (M_s is unchanged).
    """

    def __init__(self, files: list[pathlib.Path], flip: bool = False):
        self.videos = _load(files)
        self.index = [(v, c) for v, data in enumerate(self.videos) for c in range(data["starts"].shape[0])]
        if not self.index:
            raise ValueError("no clips")
        sizes = {tuple(d["frames"].shape[-2:]) for d in self.videos}
        if len(sizes) != 1:
            raise ValueError(f"cached videos of different sizes {sorted(sizes)}: prepare them with one setting")
        lengths = {_clip_length(d) for d in self.videos}
        if len(lengths) != 1:
            raise ValueError(f"cached videos with clips of different lengths {sorted(lengths)}")
        self.num_frames = lengths.pop()
        self.flip = bool(flip)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        v, c = self.index[i]
        data = self.videos[v]
        n = self.num_frames
        s = int(data["starts"][c])
        frames = data["frames"][s:s + n].float() / 255.0
        flows = data["flows"][s:s + n - 1].float()
        if self.flip and bool(torch.rand(()) < 0.5):
            frames, flows = frames.flip(-1), flows.flip(-1)
            flows = torch.stack([-flows[:, 0], flows[:, 1]], dim=1)
        return {"frames": frames, "flows": flows, "strength": data["strengths"][c].clone(),
                "fps": data["fps"][0].clone()}


# ============================================================================================ T's pairs


def sample_arrows(flow: torch.Tensor, count: int, threshold: float = PAPER_THRESHOLD,
                  generator: torch.Generator | None = None) -> Arrows:
    """``count`` arrows of a real flow: points drawn without replacement among the pixels moving by more than
    ``threshold`` (px/frame), with probability proportional to their flow's length, each an arrow from p to
    p + flow(p) (speed 1). Fewer when fewer pixels move (none for a still flow).

    Args:
        flow: [2, H, W] pixels per frame.
        count: arrows wanted (>= 0).
        threshold: R of Eq. 7, px/frame.
        generator: torch generator (None: the global one).

    Returns:
        ``Arrows`` with [K, 2] start and end in pixels, K <= count.
    """
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise ValueError(f"flow must be [2, H, W], got {tuple(flow.shape)}")
    flow = flow.float().cpu()
    length = flow.square().sum(0).sqrt().flatten()
    moving = length > float(threshold)
    k = min(int(count), int(moving.sum()))
    if k <= 0:
        return Arrows(torch.zeros(0, 2), torch.zeros(0, 2))
    weights = torch.where(moving, length, torch.zeros_like(length))
    picked = torch.multinomial(weights, k, replacement=False, generator=generator)
    width = flow.shape[-1]
    start = torch.stack([(picked % width).float(), (picked // width).float()], dim=1)
    vectors = flow.flatten(1)[:, picked].t()
    return Arrows(start, start + vectors)


def rough_field(arrows: Arrows, height: int, width: int, sigma: float | None = None,
                threshold: float = PAPER_THRESHOLD) -> torch.Tensor:
    """The dense field a user's arrows give (Eqs. 5-7): [2, H, W] px/frame; ``sigma`` None = 170 px at 512 px,
    proportional to the long side (``ops.sparse_to_dense.default_sigma``). No arrow: zeros."""
    if arrows.num_arrows == 0:
        return torch.zeros(2, int(height), int(width))
    return gaussian_arrow_field(arrows, height, width, sigma=sigma, threshold=threshold)


@dataclass
class RefinerSample:
    """One pair of T's training data (:meth:`RefinerPairs.sample`): ``rough`` [2, H, W] and ``target`` [2, H, W]
    px/frame, ``image`` [3, H, W] in [0, 1] (frame k), the ``arrows`` the rough field was made from."""

    rough: torch.Tensor
    image: torch.Tensor
    target: torch.Tensor
    arrows: Arrows


class RefinerPairs(torch.utils.data.Dataset):
    """T's training pairs from cached videos: every frame pair (k, k + 1) inside a clip.

    Item i: ``(rough [2, H, W], image [3, H, W], target [2, H, W])`` with a fresh random set of 1 .. ``max_arrows``
    arrows each time (module docstring; torch's global generator, which the trainers seed per item), and with
    ``flip`` a random horizontal flip of all three.

    Args:
        files: cache files of :func:`prepare_video`.
        max_arrows: most arrows per pair.
        sigma: Gaussian width in pixels (None: 170 px at 512 px, scaled with the long side).
        threshold: R (Eq. 7 and the moving-pixel test of the sampling), px/frame.
        flip: random horizontal flips.
    """

    def __init__(self, files: list[pathlib.Path], max_arrows: int = 8, sigma: float | None = None,
                 threshold: float = PAPER_THRESHOLD, flip: bool = False):
        if int(max_arrows) < 1:
            raise ValueError(f"max_arrows must be >= 1, got {max_arrows}")
        self.videos = _load(files)
        self.index = []
        for v, data in enumerate(self.videos):
            n = _clip_length(data)
            pairs = sorted({int(s) + k for s in data["starts"].tolist() for k in range(n - 1)})
            self.index.extend((v, t) for t in pairs)
        if not self.index:
            raise ValueError("no frame pairs")
        self.max_arrows, self.sigma, self.threshold, self.flip = int(max_arrows), sigma, float(threshold), bool(flip)

    def __len__(self) -> int:
        return len(self.index)

    def sample(self, i: int, generator: torch.Generator | None = None) -> RefinerSample:
        """Pair ``i`` with its arrows drawn from ``generator`` (None: torch's global generator)."""
        v, t = self.index[i]
        data = self.videos[v]
        image = data["frames"][t].float() / 255.0
        target = data["flows"][t].float()
        if self.flip and bool(torch.rand((), generator=generator) < 0.5):
            image, target = image.flip(-1), target.flip(-1)
            target = torch.stack([-target[0], target[1]])
        count = int(torch.randint(1, self.max_arrows + 1, (), generator=generator))
        arrows = sample_arrows(target, count, self.threshold, generator)
        rough = rough_field(arrows, *target.shape[-2:], sigma=self.sigma, threshold=self.threshold)
        return RefinerSample(rough, image, target, arrows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.sample(i)
        return s.rough, s.image, s.target


def _clip_length(data: dict[str, torch.Tensor]) -> int:
    return int(data["clip_frames"][0])

