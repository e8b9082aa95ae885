"""Motion flow predictor P (LVMM Sec. 3.1.1): region-based, in the spirit of MRAA (Siarohin et al. 2021).

P(I'0, I'k) works on both frames downsampled x0.25 (Eq. 2) and returns p = [delta; omega]:

1. **Regions.** An hourglass maps each frame to K heatmap logits; a spatial softmax (temperature tau) gives K
   region heatmaps. Each region's centre mu = sum heat * x and covariance Sigma = sum heat (x - mu)(x - mu)^T
   (normalised coordinates in [-1, 1], pixel centres at (2 i + 1) / n - 1); its shape is the Cholesky factor
   A = chol(Sigma) (MRAA uses the PCA factor U S^1/2; Cholesky is differentiable everywhere and unique).
2. **Per-region affine motion** (backward, frame k -> I0): x_0 = mu_0 + A_0 A_k^-1 (x_k - mu_k).
   **Background motion**: a global affine x_0 = M x_k + b from both frames (strided convs, zero-initialised
   head = identity).
3. **Pixel-wise flow.** I'0 deformed by each of the K + 1 transforms, with each region's heatmap difference
   (frame k minus I0, heatmaps scaled to peak 1), goes through a second hourglass that predicts a soft
   assignment over the K + 1 transforms (softmax) and the intention map omega (sigmoid). The dense backward
   flow is sum_j m_j (T_j(x) - x), converted to pixels.

P sees frame k only through its region heatmaps and the background transform: a motion bottleneck, not an
image copy. :func:`region_equivariance_loss` (MRAA / LFDM's equivariance constraint on region centres) keeps
the regions attached to content.

Example:
    >>> from .config import PredictorConfig
    >>> p = MotionFlowPredictor(PredictorConfig(num_regions=2, region_widths=(8, 8), flow_widths=(8, 8),
    ...                                         background_widths=(8,), norm_num_groups=4))
    >>> flow, omega = p(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
    >>> flow.shape, omega.shape
    (torch.Size([1, 2, 16, 16]), torch.Size([1, 1, 16, 16]))
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import PredictorConfig
from .layers import ConvBlock, Hourglass

_EPS = 1e-4


def normalized_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """[H, W, 2] (x, y) pixel centres in grid_sample's align_corners=False coordinates ((2 i + 1) / n - 1).

    Example:
        >>> normalized_grid(1, 2)[0].tolist()
        [[-0.5, 0.0], [0.5, 0.0]]
    """
    xs = (torch.arange(width, device=device, dtype=dtype) * 2 + 1) / width - 1
    ys = (torch.arange(height, device=device, dtype=dtype) * 2 + 1) / height - 1
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)


def _cholesky2(cov: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of [..., 2, 2] symmetric positive matrices (closed form, regularised)."""
    a = cov[..., 0, 0].clamp_min(_EPS)
    l11 = a.sqrt()
    l21 = cov[..., 1, 0] / l11
    l22 = (cov[..., 1, 1] - l21 * l21).clamp_min(_EPS).sqrt()
    zero = torch.zeros_like(l11)
    return torch.stack([torch.stack([l11, zero], -1), torch.stack([l21, l22], -1)], -2)


def _inverse_lower2(m: torch.Tensor) -> torch.Tensor:
    """Inverse of lower-triangular [..., 2, 2] matrices."""
    l11, l21, l22 = m[..., 0, 0], m[..., 1, 0], m[..., 1, 1]
    zero = torch.zeros_like(l11)
    return torch.stack([torch.stack([1 / l11, zero], -1), torch.stack([-l21 / (l11 * l22), 1 / l22], -1)], -2)


def region_parameters(logits: torch.Tensor, temperature: float) -> dict[str, torch.Tensor]:
    """Heatmaps, centres and Cholesky shapes of K regions from heatmap logits [B, K, H, W].

    Returns:
        dict with ``heatmap`` [B, K, H, W] (each sums to 1), ``mean`` [B, K, 2] (x, y normalised) and
        ``shape`` [B, K, 2, 2] (lower-triangular A with A A^T = covariance).

    Example:
        >>> logits = torch.full((1, 1, 4, 4), -1e4); logits[0, 0, 1, 2] = 0.0
        >>> region_parameters(logits, 1.0)["mean"][0, 0].tolist()
        [0.25, -0.25]
    """
    b, k, h, w = logits.shape
    heat = torch.softmax(logits.float().flatten(2) / temperature, dim=-1).view(b, k, h, w)
    grid = normalized_grid(h, w, logits.device)
    mean = torch.einsum("bkhw,hwc->bkc", heat, grid)
    diff = grid.view(1, 1, h, w, 2) - mean.view(b, k, 1, 1, 2)
    cov = torch.einsum("bkhw,bkhwi,bkhwj->bkij", heat, diff, diff)
    return {"heatmap": heat, "mean": mean, "shape": _cholesky2(cov)}


def local_cost_volume(source: torch.Tensor, driving: torch.Tensor, radius: int) -> torch.Tensor:
    """Matching costs of every pixel of ``driving`` against I0 shifted by d in [-r, r]^2 (backward matching).

    cost_d(x) = -mean_c (source(x + d) - driving(x))^2 x 100, source extended by replication at the border:
    [B, (2 r + 1)^2, h, w], displacement d = (dx, dy) in row-major order of dy then dx. It gives the flow network
    direct evidence of motion (as the correlation layers of flow networks do); r = 0 returns an empty tensor.

    Example:
        >>> img = torch.rand(1, 3, 8, 8)
        >>> cost = local_cost_volume(img, torch.roll(img, 1, dims=3), 1)   # content moved one pixel right
        >>> int(cost[0, :, 4, 4].argmax())                                  # best match: d = (-1, 0)
        3
    """
    b, c, h, w = source.shape
    if radius <= 0:
        return source.new_zeros(b, 0, h, w)
    padded = F.pad(source, (radius,) * 4, mode="replicate")
    costs = []
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            shifted = padded[:, :, radius + dy:radius + dy + h, radius + dx:radius + dx + w]
            costs.append(-(shifted - driving).pow(2).mean(dim=1) * 100.0)
    return torch.stack(costs, dim=1)


class RegionPredictor(nn.Module):
    """Hourglass -> K heatmap logits -> :func:`region_parameters`."""

    def __init__(self, config: PredictorConfig):
        super().__init__()
        self.temperature = float(config.temperature)
        self.net = Hourglass(3, tuple(config.region_widths), config.norm_num_groups)
        self.head = nn.Conv2d(self.net.out_channels, config.num_regions, 7, 1, 3)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return region_parameters(self.head(self.net(image)), self.temperature)


class BackgroundPredictor(nn.Module):
    """Global affine motion [B, 2, 3] (frame k -> I0 coordinates) from the two frames; identity at init."""

    def __init__(self, config: PredictorConfig):
        super().__init__()
        layers, prev = [], 6
        for w in config.background_widths:
            layers.append(ConvBlock(prev, w, config.norm_num_groups, stride=2))
            prev = w
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(prev, 6)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        features = self.net(torch.cat([source, driving], dim=1)).mean(dim=(2, 3))
        identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], device=source.device)
        return identity + self.head(features.float()).view(-1, 2, 3)


class MotionFlowPredictor(nn.Module):
    """P: (I'0, I'k) [B, 3, h, w] at the flow resolution -> (backward flow [B, 2, h, w] px, omega [B, 1, h, w]).

    ``flow(q)`` is where output pixel q of frame k finds its content in I0 (``q + flow(q)``, pixels at h x w);
    omega in [0, 1] is the intention / occlusion map. See the module docstring.
    """

    def __init__(self, config: PredictorConfig):
        super().__init__()
        self.config = config
        self.num_regions = int(config.num_regions)
        self.regions = RegionPredictor(config)
        self.background = BackgroundPredictor(config)
        transforms = self.num_regions + 1
        self.cost_radius = int(config.cost_radius)
        costs = (2 * self.cost_radius + 1) ** 2 if self.cost_radius > 0 else 0
        self.flow_net = Hourglass(transforms * 4 + 6 + costs, tuple(config.flow_widths), config.norm_num_groups)
        self.mask_head = nn.Conv2d(self.flow_net.out_channels, transforms, 7, 1, 3)
        with torch.no_grad():  # start from the background transform (identity): no spurious region motion
            self.mask_head.weight.mul_(0.1)
            self.mask_head.bias.zero_()
            self.mask_head.bias[0] = 4.0
        self.residual_head = nn.Conv2d(self.flow_net.out_channels, 2, 3, 1, 1)
        nn.init.zeros_(self.residual_head.weight)
        nn.init.zeros_(self.residual_head.bias)
        self.intention_head = nn.Conv2d(self.flow_net.out_channels, 1, 7, 1, 3)
        nn.init.zeros_(self.intention_head.weight)
        nn.init.constant_(self.intention_head.bias, 3.0)  # omega ~ 0.95 at init: warp everywhere

    def transforms(self, source: torch.Tensor, driving: torch.Tensor
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Sampling grids of the K + 1 transforms [B, K + 1, h, w, 2] (normalised) and both frames' regions."""
        b, _, h, w = source.shape
        src, drv = self.regions(source), self.regions(driving)
        grid = normalized_grid(h, w, source.device).view(1, 1, h, w, 2, 1)
        # region k: x0 = mu_0 + A_0 A_k^-1 (x - mu_k)
        jac = src["shape"] @ _inverse_lower2(drv["shape"])  # [B, K, 2, 2]
        rel = grid - drv["mean"].view(b, -1, 1, 1, 2, 1)
        region_grids = (jac.view(b, -1, 1, 1, 2, 2) @ rel).squeeze(-1) + src["mean"].view(b, -1, 1, 1, 2)
        theta = self.background(source, driving)  # [B, 2, 3]
        bg = (theta[:, None, None, :, :2] @ grid[:, 0]).squeeze(-1) + theta[:, None, None, :, 2]
        grids = torch.cat([bg.unsqueeze(1), region_grids], dim=1)
        return grids, src, drv

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if source.ndim != 4 or source.shape[1] != 3 or source.shape != driving.shape:
            raise ValueError(f"source and driving must be [B, 3, h, w] of one shape, got {tuple(source.shape)} "
                             f"and {tuple(driving.shape)}")
        b, _, h, w = source.shape
        grids, src, drv = self.transforms(source, driving)
        n = grids.shape[1]
        deformed = F.grid_sample(source.float().repeat_interleave(n, dim=0), grids.reshape(b * n, h, w, 2),
                                 mode="bilinear", padding_mode="border", align_corners=False).view(b, n, 3, h, w)

        def peak(heat: torch.Tensor) -> torch.Tensor:
            return heat / heat.amax(dim=(2, 3), keepdim=True).clamp_min(1e-8)

        heat = peak(drv["heatmap"]) - peak(src["heatmap"])
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1).unsqueeze(2)  # background: 0
        stacked = torch.cat([deformed, heat], dim=2).view(b, n * 4, h, w).to(source.dtype)
        cost = local_cost_volume(source.float(), driving.float(), self.cost_radius).to(source.dtype)
        features = self.flow_net(torch.cat([stacked, source, driving, cost], dim=1))
        mask = torch.softmax(self.mask_head(features).float(), dim=1)  # [B, K + 1, h, w]
        identity = normalized_grid(h, w, source.device)
        displacement = ((grids - identity) * mask.unsqueeze(-1)).sum(dim=1)  # [B, h, w, 2] normalised
        scale = torch.tensor([w / 2.0, h / 2.0], device=source.device)
        flow = (displacement * scale).permute(0, 3, 1, 2) + self.residual_head(features).float()
        intention = torch.sigmoid(self.intention_head(features).float())
        return flow.to(source.dtype), intention.to(source.dtype)


def random_affine(batch: int, magnitude: float = 0.1, generator: torch.Generator | None = None,
                  device=None) -> torch.Tensor:
    """Random near-identity affine transforms [B, 2, 3] (normalised coordinates): small rotation, scale,
    shear and translation with standard deviation ``magnitude``."""
    noise = torch.randn(batch, 2, 3, generator=generator) * magnitude
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    return (identity + noise).to(device)


def region_equivariance_loss(regions: RegionPredictor, image: torch.Tensor, magnitude: float = 0.1,
                             generator: torch.Generator | None = None) -> torch.Tensor:
    """Equivariance of the region centres under a random affine warp (MRAA / LFDM).

    The warped image is Y'(x) = Y(theta x); a region found at mu' in Y' must be at theta mu' in Y. Returns
    the mean L1 distance between theta mu' and mu (normalised units).

    Example:
        >>> from .config import PredictorConfig
        >>> rp = RegionPredictor(PredictorConfig(num_regions=2, region_widths=(8,), norm_num_groups=4))
        >>> float(region_equivariance_loss(rp, torch.rand(2, 3, 8, 8)).detach()) >= 0
        True
    """
    b = image.shape[0]
    theta = random_affine(b, magnitude, generator, image.device)
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)
    warped = F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    mu = regions(image)["mean"]
    mu_t = regions(warped.to(image.dtype))["mean"]
    mapped = (theta[:, None, :, :2] @ mu_t.unsqueeze(-1)).squeeze(-1) + theta[:, None, :, 2]
    return (mapped - mu).abs().mean()
