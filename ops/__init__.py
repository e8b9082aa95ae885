"""Pure PyTorch operators: splatting, warping, spectral volumes, sparse-to-dense motion. No ComfyUI imports."""
