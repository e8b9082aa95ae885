"""Nodes that make, convert and sample motion."""
from .eulerian import EulerianMotion
from .load_model import LoadMotionModel
from .long_animation import NODES as LONG_ANIMATION_NODES
from .long_video import NODES as LONG_VIDEO_NODES
from .loop_guidance import LoopGuidance
from .lvmm import NODES as LVMM_NODES
from .motion_i2v import NODES as MOTION_I2V_NODES
from .spectral import NODES as SPECTRAL_NODES

NODES = [EulerianMotion, LoadMotionModel, LoopGuidance, *SPECTRAL_NODES, *LVMM_NODES, *LONG_VIDEO_NODES, *MOTION_I2V_NODES,
         *LONG_ANIMATION_NODES]
