"""train/long_animation.py's field jitter: each clip's conditioning field scaled by 2^U(-j, j) while M_s stays the
clip's, so that M_s, not the field's length, is what tells the overall speed (issue 16)."""
from __future__ import annotations

import pytest
import torch

from imagedynamics.train.long_animation import build_parser, jitter_factors


def test_jitter_factors_are_log_uniform_over_the_octaves():
    """j = 1: factors within [1/2, 2], reaching both ends, log2 uniform on [-1, 1] (mean 0, std 1 / sqrt 3)."""
    f = jitter_factors(20_000, 1.0, generator=torch.Generator().manual_seed(0))
    assert f.shape == (20_000, 1, 1, 1, 1)
    assert float(f.min()) >= 0.5 and float(f.max()) <= 2.0
    assert float(f.min()) < 0.51 and float(f.max()) > 1.96
    logs = f.log2().flatten()
    assert abs(float(logs.mean())) < 0.02 and abs(float(logs.std()) - 3 ** -0.5) < 0.01
    half = jitter_factors(20_000, 0.5, generator=torch.Generator().manual_seed(1))
    assert 2 ** -0.5 <= float(half.min()) and float(half.max()) <= 2 ** 0.5


def test_no_jitter_is_the_measured_field():
    assert torch.equal(jitter_factors(7, 0.0), torch.ones(7, 1, 1, 1, 1))


def test_the_command_line_jitters_by_default_and_refuses_a_negative_jitter():
    from imagedynamics.train.long_animation import main

    args = build_parser().parse_args(["--videos", "v", "--out", "o.safetensors"])
    assert args.field_jitter == 1.0
    with pytest.raises(ValueError, match="--field-jitter"):
        main(["--videos", "v", "--out", "o.safetensors", "--field-jitter", "-1"])
