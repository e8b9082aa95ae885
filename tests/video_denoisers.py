"""Small denoisers that exercise the long-video sampler (``models/long_video``) in tests and benchmarks (no weights,
no downloads). They are test fixtures, not a model family: ``models/long_video`` is an algorithm over any
``denoiser(x, t, cond)``.

* ``GaussianVideoDenoiser``: the exact (Bayes-optimal) epsilon-prediction for latents drawn from a Gaussian
  video prior x0 ~ N(mu, std^2 K_time (x) K_y (x) K_x) per channel, under a VP schedule (DDIM, DDPM, ...):
  a still picture mu (repeated along time) animated by a smooth space-time texture, the regime of image
  animation. With x_t = a x0 + s eps and Sigma = U diag(lambda) U^T (separable eigenbases),

      E[eps | x_t] = s U diag(1 / (a^2 lambda + s^2)) U^T (x_t - a mu).

  Samples have genuine temporal structure (correlation length ``frame_scale`` frames) and no training is
  needed, so seam and diversity tests measure the sampler, not an under-trained network.
* ``TinyVideoDenoiser``: depthwise-separable Conv3d blocks with a diffusers timestep embedding; untrained, for
  timing and memory measurements of realistic tensor traffic.

Layout: [B, C, L, h, w].

Example:
    >>> import torch
    >>> from diffusers import DDIMScheduler
    >>> sch = DDIMScheduler(clip_sample=False)
    >>> den = GaussianVideoDenoiser(torch.zeros(1, 2, 1, 4, 4), num_frames=6, alphas_cumprod=sch.alphas_cumprod)
    >>> den(torch.randn(1, 2, 6, 4, 4), torch.tensor(500), None).shape
    torch.Size([1, 2, 6, 4, 4])
"""
from __future__ import annotations

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn


def squared_exponential_basis(size: int, length_scale: float, jitter: float = 1e-4
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigen-decomposition (values [n], vectors [n, n], float64) of exp(-(i - j)^2 / (2 l^2)) + jitter I."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if length_scale <= 0:
        raise ValueError(f"length_scale must be > 0, got {length_scale}")
    i = torch.arange(size, dtype=torch.float64)
    kernel = torch.exp(-((i[:, None] - i[None, :]) ** 2) / (2.0 * length_scale ** 2))
    values, vectors = torch.linalg.eigh(kernel + jitter * torch.eye(size, dtype=torch.float64))
    return values.clamp_min(0.0), vectors


class GaussianVideoDenoiser:
    """Exact eps-prediction for a Gaussian video prior (see the module docstring).

    Args:
        mean: mu, broadcastable to [B, C, L, h, w] (e.g. a still [1, C, 1, h, w]); h, w are read from it.
        num_frames: L.
        alphas_cumprod: [N] the schedule's alpha_bar (``scheduler.alphas_cumprod``).
        std: texture standard deviation.
        frame_scale: temporal correlation length in frames.
        space_scale: spatial correlation length in latent pixels.

    ``cond`` may be a tensor that replaces ``mean`` for the call.
    """

    def __init__(self, mean: torch.Tensor, num_frames: int, alphas_cumprod: torch.Tensor, std: float = 1.0,
                 frame_scale: float = 2.0, space_scale: float = 1.5) -> None:
        if mean.ndim != 5:
            raise ValueError(f"mean must be [B, C, 1 or L, h, w], got {tuple(mean.shape)}")
        if std <= 0:
            raise ValueError(f"std must be > 0, got {std}")
        self.mean = mean.double()
        self.alphas_cumprod = alphas_cumprod.double().cpu()
        h, w = mean.shape[-2:]
        lt, ut = squared_exponential_basis(num_frames, frame_scale)
        ly, uy = squared_exponential_basis(h, space_scale)
        lx, ux = squared_exponential_basis(w, space_scale)
        self.num_frames = num_frames
        self.bases = (ut, uy, ux)
        self.variance = std ** 2 * lt[:, None, None] * ly[None, :, None] * lx[None, None, :]   # [L, h, w]

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        if x.ndim != 5 or x.shape[2] != self.num_frames:
            raise ValueError(f"x must be [B, C, {self.num_frames}, h, w], got {tuple(x.shape)}")
        ab = self.alphas_cumprod[int(t)]
        a, s = ab.sqrt(), (1.0 - ab).sqrt()
        mean = self.mean if cond is None else cond.double()
        ut, uy, ux = (u.to(x.device) for u in self.bases)
        r = x.double() - a * mean.to(x.device)
        y = torch.einsum("bclhw,lp,hq,wr->bcpqr", r, ut, uy, ux)
        y = y * (s / (a * a * self.variance.to(x.device) + s * s))
        return torch.einsum("bcpqr,lp,hq,wr->bclhw", y, ut, uy, ux).to(x.dtype)

    def sample(self, batch: int, channels: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws x0 from the prior: [batch, channels, L, h, w] float32."""
        ut, uy, ux = self.bases
        z = torch.randn(batch, channels, *self.variance.shape, generator=generator, dtype=torch.float64)
        z = z * self.variance.sqrt()
        x = torch.einsum("bcpqr,lp,hq,wr->bclhw", z, ut, uy, ux)
        return (x + self.mean).float()


class TinyVideoDenoiser(nn.Module):
    """A small 3D-convolutional denoiser: [B, C, L, h, w] -> same (untrained; for timing and memory runs).

    Pointwise stem, ``depth`` residual blocks of a depthwise 3x3x3 Conv3d (space and time) followed by a
    pointwise Conv3d (the depthwise-separable block of MobileNet / ConvNeXt), a sinusoidal + MLP timestep
    embedding (diffusers ``Timesteps`` / ``TimestepEmbedding``) added in every block, pointwise head. The
    depthwise-separable form keeps the per-call working memory at a few activations (a dense 3x3x3 Conv3d on
    the CPU unfolds its input 27 times), so memory measurements see the sampler, not the convolution.

    Args:
        channels: latent channels.
        width: hidden channels.
        depth: residual blocks.

    Example:
        >>> import torch
        >>> net = TinyVideoDenoiser(channels=4, width=8, depth=1)
        >>> net(torch.randn(1, 4, 3, 8, 8), torch.tensor(10)).shape
        torch.Size([1, 4, 3, 8, 8])
    """

    def __init__(self, channels: int = 4, width: int = 32, depth: int = 2) -> None:
        super().__init__()
        self.time_proj = Timesteps(width, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(width, width)
        self.conv_in = nn.Conv3d(channels, width, 1)
        self.depthwise = nn.ModuleList(nn.Conv3d(width, width, 3, padding=1, groups=width) for _ in range(depth))
        self.pointwise = nn.ModuleList(nn.Conv3d(width, width, 1) for _ in range(depth))
        self.conv_out = nn.Conv3d(width, channels, 1)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"x must be [B, C, L, h, w], got {tuple(x.shape)}")
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])
        emb = self.time_embed(self.time_proj(t).to(x.dtype))[:, :, None, None, None]
        h = self.conv_in(x)
        for depthwise, pointwise in zip(self.depthwise, self.pointwise):
            h = h + pointwise(self.act(depthwise(h) + emb))
        return self.conv_out(self.act(h))
