"""Learned image-based renderer (GID section 3, LVMM's intention-gated renderer): the ``renderer`` family.

- :class:`ImageRenderer` (``model.py``) / :class:`ImageRendererConfig` (``config.py``): feature pyramid, softmax
  splatting per level, synthesis decoder adding a residual to the pixel renderer's frame.
- :func:`render_frames_learned` (``render.py``): chunked rendering of a whole motion.
- :func:`brightness_constancy_metric` (``metrics.py``): splat metric when the target frame is known.
- :func:`save`, :func:`load`, :func:`from_checkpoint` (``checkpoint.py``): the ``renderer`` family.
Trained by ``train/renderer.py``.
"""
from .checkpoint import FAMILY, from_checkpoint, load, save
from .config import ImageRendererConfig
from .metrics import brightness_constancy_metric
from .model import ImageRenderer, level_sizes
from .render import render_frames_learned

__all__ = ["FAMILY", "ImageRenderer", "ImageRendererConfig", "brightness_constancy_metric", "from_checkpoint",
           "level_sizes", "load", "render_frames_learned", "save"]
