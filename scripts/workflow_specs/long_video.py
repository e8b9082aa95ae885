"""Long-video example graphs: a long clip from a core video model with Long Video Reschedule.

``long_video_core``: a video model (UNETLoader) samples 5 segments of one latent clip into one long latent
(phased inference with a shared noise reschedule: the last segments share the first one's early steps), saved
with SaveLatent. The file names the tiny Cosmos-Predict2 the tests build (tests/integration/tiny_long_video.py)
and a fixed core embedding in place of a prompt (LotusConditioning, 1024-wide like Cosmos' T5 tokens), so that
it runs anywhere in seconds; the sampler settings are those of a real video model. For real use load e.g.
Wan 2.1 T2V 1.3B (UNETLoader) with its UMT5 text encoder (CLIPLoader, type wan) and CLIPTextEncode prompts, an
EmptyHunyuanLatentVideo of 832x480x33 (9 latent frames), steps 30, cfg 6, overlap 2, and decode the long
latent with the model's VAE (VAEDecode -> SaveAnimatedWEBP / CreateVideo).
"""
from __future__ import annotations

from workflow_format import Node, Workflow

TINY_VIDEO_MODEL = "tiny_cosmos_predict2_long_video.safetensors"


def long_video_core() -> Workflow:
    """Five 4-frame latent segments joined with a 1-frame cross-fade: 16 latent frames from 22 evaluations.

    12 steps, gamma 0.8: the first segment takes 12, each later one 12 - ceil(0.8 x 12) = 2, the image noise prior 2
    (12 + 4 x 2 + 2 = 22; five KSampler runs: 60).
    """
    return Workflow("A long clip from a core video model: Long Video Reschedule", """
**Long Video Reschedule** samples 5 segments of one video model's latent clip into one long latent: the later
segments share the first one's early denoising steps (the long-animation paper's phased inference with a shared
noise reschedule, gamma 0.8), so 16 latent frames take 22 model evaluations instead of 60, and the segments join
with a 1-frame cross-fade. Here a tiny stand-in model and conditioning run in seconds; with a real model, decode
the long latent with its VAE (VAE Decode -> Save Animated WEBP).""", [
        Node(1, "UNETLoader", {"unet_name": TINY_VIDEO_MODEL, "weight_dtype": "default"},
             title="Video model (here: a tiny test Cosmos-Predict2; e.g. Wan 2.1 T2V)", size=(380, 110)),
        Node(2, "LotusConditioning", {}, title="Prompt stand-in (real model: CLIPTextEncode)", size=(320, 60)),
        Node(3, "ConditioningZeroOut", {}, {"conditioning": (2, 0)}, title="Negative", size=(260, 60)),
        Node(4, "EmptyHunyuanLatentVideo", {"width": 48, "height": 48, "length": 13, "batch_size": 1},
             title="One segment's latent (e.g. 832x480x33)", size=(320, 150)),
        Node(5, "LongVideoReschedule", {"seed": 42, "steps": 12, "cfg": 4.0, "sampler_name": "euler",
                                        "scheduler": "simple", "num_segments": 5, "gamma": 0.8, "omega": 0.2,
                                        "overlap": 1, "crossfade": True, "noise_prior": "image", "shuffle": "frame"},
             {"model": (1, 0), "positive": (2, 0), "negative": (3, 0), "latent": (4, 0)}, size=(340, 420)),
        Node(6, "SaveLatent", {"filename_prefix": "ImageDynamics/long_video"}, {"samples": (5, 0)},
             title="Save the long latent (real model: VAEDecode -> SaveAnimatedWEBP)", size=(360, 80)),
    ], thumbnail="graph")


WORKFLOWS = {"long_video_core": long_video_core}
