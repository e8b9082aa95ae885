"""The long-animation paper's additions to Stable Video Diffusion (Controllable Longer Image Animation).

- :class:`LongAnimationModel` / :class:`LongAnimationConfig` (``model.py``, ``config.py``): motion encoder,
  motion attention adapters (Eq. 4), motion strength embedding (Eq. 8), static-camera LoRA, refinement model T
  (``refiner.py``), for the SVD named by :class:`SVDFit`; the ``long_animation`` family (``checkpoint.py``).
- ``attach.py``: the one way they enter an SVD U-Net (ComfyUI's patches and the trainer).
Trained by ``train/long_animation.py`` (video model) and ``train/refiner.py`` (T).
"""
