"""Pretrainable networks of the learned renderer: GID's ResNet-34 feature pyramid and a perceptual loss.

GID section 4 encodes I0 with a ResNet-34 into multi-scale features and trains the renderer with a VGG perceptual
loss. Nothing is downloaded here: the ResNet-34 starts from random weights or from the user's own file, and the
perceptual loss is computed with a network file the user supplies (a torchvision VGG or ResNet-34 state dict);
without one it is unavailable.

* :class:`ResNetPyramid` -- torchvision's ResNet-34 layout (``torchvision.models.resnet34``; its parameter names,
  so a torchvision state dict loads as is) as the renderer's encoder: level 0 is a full-resolution conv block
  (the ResNet starts at 1/2), level 1 the stem (conv1, 64 ch, 1/2), levels 2-5 ``layer1``-``layer4`` (64, 128, 256,
  512 channels at 1/4 .. 1/32). Batch-norm statistics stay frozen (the layers always normalise with their running
  statistics, affine parameters trainable): the network stays local and batch-independent, so frames rendered in
  chunks or crops are identical.
* :func:`load_state_file` -- a ``.safetensors`` / ``.pt`` / ``.pth`` state dict (common wrappers and prefixes
  removed).
* :class:`PerceptualLoss` -- mean L1 distance between the features of prediction and target at several depths of
  a frozen VGG (any torchvision ``vgg*`` without batch norm: the layout is read from the file) or ResNet-34, on
  ImageNet-normalised RGB; 0 for identical images.

Shapes: images [B, 3, H, W] RGB in [0, 1].
"""
from __future__ import annotations

import os
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import RESNET34_CHANNELS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_PREFIXES = ("module.", "backbone.", "model.", "encoder.", "net.")


def _torchvision_resnet34():
    try:
        from torchvision.models import resnet34
    except ImportError as exc:  # pragma: no cover - ComfyUI installs torchvision
        raise ImportError("the ResNet-34 encoder needs torchvision (installed with ComfyUI)") from exc
    return resnet34(weights=None)


def load_state_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from ``path`` (safetensors, or a torch pickle read with ``weights_only=True``); a
    ``state_dict`` / ``model`` wrapper and common prefixes (``module.``, ``backbone.``, ...) are removed.

    Raises:
        ValueError: the file is missing, unreadable or holds no tensors.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"network file {path!r} does not exist")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"network file {os.path.basename(path)!r} cannot be read ({exc})") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"network file {os.path.basename(path)!r} holds no state dict of tensors")
    state = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _freeze_batch_norm_statistics(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


class ResNetPyramid(nn.Module):
    """ResNet-34 feature pyramid of I0 for the renderer (see the module docstring).

    Args:
        levels: pyramid levels, 2 .. 6 (level l at ceil(H / 2^l)).
        level0_channels: channels of the full-resolution level 0 (the RGB is added by the renderer).

    Example:
        >>> net = ResNetPyramid(levels=4, level0_channels=8)
        >>> [tuple(f.shape[1:]) for f in net(torch.rand(1, 3, 37, 50))]
        [(8, 37, 50), (64, 19, 25), (64, 10, 13), (128, 5, 7)]
    """

    def __init__(self, levels: int, level0_channels: int):
        super().__init__()
        if not 2 <= int(levels) <= 6:
            raise ValueError(f"the ResNet-34 pyramid has 2 to 6 levels, got {levels}")
        self.levels = int(levels)
        self.level0 = nn.Sequential(nn.Conv2d(3, level0_channels, 3, 1, 1), nn.SiLU(),
                                    nn.Conv2d(level0_channels, level0_channels, 3, 1, 1), nn.SiLU())
        resnet = _torchvision_resnet34()
        self.conv1, self.bn1 = resnet.conv1, resnet.bn1
        self.maxpool = resnet.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        # layers the pyramid does not reach are dropped (no unused parameters for DDP)
        for name in ("layer1", "layer2", "layer3", "layer4")[max(0, self.levels - 2):]:
            setattr(self, name, None)
        self.gradient_checkpointing = False

    @property
    def channels(self) -> tuple[int, ...]:
        return (self.level0[0].out_channels, *RESNET34_CHANNELS[:self.levels - 1])

    def train(self, mode: bool = True):
        super().train(mode)
        _freeze_batch_norm_statistics(self)
        return self

    def load_resnet_weights(self, state: dict[str, torch.Tensor], name: str = "weights") -> None:
        """Load a torchvision ResNet-34 state dict (``fc.*`` and the layers the pyramid does not use are ignored).

        Raises:
            ValueError: a parameter the pyramid needs is missing or has another shape (names the first ones).
        """
        own = {k: v for k, v in self.state_dict().items() if not k.startswith("level0.")}
        missing = [k for k in own if k not in state]
        wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})" for k in own
                 if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
        if missing or wrong:
            problem = f"missing {missing[:3]}" if missing else f"shapes {wrong[:3]}"
            raise ValueError(f"{name}: not a torchvision ResNet-34 state dict ({problem})")
        self.load_state_dict({**self.state_dict(), **{k: state[k] for k in own}})

    def _stage(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(module, x, use_reentrant=False)
        return module(x)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """[B, 3, H, W] in [0, 1] -> features of levels 0 .. levels - 1."""
        mean = torch.tensor(IMAGENET_MEAN, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
        x = (image - mean) / std
        out = [self._stage(self.level0, image)]
        x = F.relu(self.bn1(self.conv1(x)))
        out.append(x)
        x = self.maxpool(x)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4)[:self.levels - 2]:
            x = self._stage(layer, x)
            out.append(x)
        return out


# ============================================================================================ perceptual loss


def _vgg_from_state(state: dict[str, torch.Tensor]) -> tuple[nn.Sequential, list[int]]:
    """A torchvision-layout VGG ``features`` Sequential rebuilt from a state dict, and the indices of the last
    ReLU of every block (the layers a perceptual loss compares: relu1_2, relu2_2, relu3_3, ... for VGG-16)."""
    convs = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"features\.(\d+)\.weight", k)))
    if any(state[f"features.{i}.weight"].ndim != 4 for i in convs):
        raise ValueError("VGG with batch norm is not supported: give the plain torchvision VGG weights")
    layers: dict[int, nn.Module] = {}
    taps = []
    for n, i in enumerate(convs):
        w = state[f"features.{i}.weight"]
        layers[i] = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], padding=w.shape[2] // 2)
        layers[i + 1] = nn.ReLU(inplace=False)
        following = convs[n + 1] if n + 1 < len(convs) else None
        if following is None or following - i == 3:  # conv, relu, pool: the block ends here
            taps.append(i + 1)
            if following is not None:
                layers[i + 2] = nn.MaxPool2d(2, 2)
        elif following - i != 2:
            raise ValueError(f"unexpected VGG layer layout around features.{i}")
    features = nn.Sequential(*[layers.get(i, nn.Identity()) for i in range(max(layers) + 1)])
    features.load_state_dict({k[len("features."):]: v for k, v in state.items() if k.startswith("features.")})
    return features, taps


class PerceptualLoss(nn.Module):
    """Feature-space L1 between two images with a frozen network the user supplies (GID's VGG perceptual loss).

    Args:
        state: the network's state dict (:func:`load_state_file`): a torchvision VGG (``features.*``; the first
            ``depth`` blocks are compared, VGG-16 default: relu1_2 .. relu4_3) or a ResNet-34 (``layer1.*``
            ...: conv1 and layers 1-3 compared).
        depth: how many feature maps to compare.

    Call: ``loss(pred, target)`` with [B, 3, H, W] in [0, 1] -> scalar (mean over the compared maps).
    """

    def __init__(self, state: dict[str, torch.Tensor], depth: int = 4, name: str = "perceptual network"):
        super().__init__()
        if "features.0.weight" in state:
            self.kind = "vgg"
            self.features, taps = _vgg_from_state(state)
            self.taps = taps[:depth]
            self.features = self.features[:self.taps[-1] + 1]
        elif "layer3.5.conv2.weight" in state and "layer4.2.conv2.weight" in state:
            self.kind = "resnet34"
            self.net = ResNetPyramid(levels=5, level0_channels=3)
            self.net.load_resnet_weights(state, name)
            self.depth = min(int(depth), 4)
        else:
            raise ValueError(f"{name}: expected a torchvision VGG (features.*) or ResNet-34 (layer1..4) state dict")
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True):
        return super().train(False)  # always frozen

    def feature_maps(self, image: torch.Tensor) -> list[torch.Tensor]:
        mean = torch.tensor(IMAGENET_MEAN, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
        if self.kind == "resnet34":
            return self.net(image)[1:1 + self.depth]
        x, out = (image - mean) / std, []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        dtype = next(self.parameters()).dtype
        a = self.feature_maps(pred.to(dtype))
        with torch.no_grad():
            b = self.feature_maps(target.to(dtype))
        return torch.stack([(x.float() - y.float()).abs().mean() for x, y in zip(a, b)]).mean()
