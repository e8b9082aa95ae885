"""Learned image-based renderer (GID section 3, LVMM's intention-gated renderer): the ``renderer`` family.

- :class:`ImageRenderer` / :class:`ImageRendererConfig` (``model.py``): feature pyramid, softmax splatting per
  level, synthesis decoder adding a residual to the pixel renderer's frame.
- :func:`render_frames_learned` (``render.py``): chunked rendering of a whole motion.
- :func:`brightness_constancy_metric` (``metrics.py``): splat metric when the target frame is known.
- :func:`save_renderer`, :func:`load_renderer`, :func:`from_checkpoint` (``checkpoint.py``).
Trained by ``train/renderer.py``.
"""
from .checkpoint import FAMILY, from_checkpoint, load_renderer, save_renderer
from .metrics import brightness_constancy_metric
from .model import ImageRenderer, ImageRendererConfig, level_sizes
from .render import render_frames_learned

__all__ = ["FAMILY", "ImageRenderer", "ImageRendererConfig", "brightness_constancy_metric", "from_checkpoint",
           "level_sizes", "load_renderer", "render_frames_learned", "save_renderer"]
