"""Nodes that make, convert and sample motion."""
from .eulerian import EulerianMotion
from .load_model import LoadMotionModel
from .spectral import NODES as SPECTRAL_NODES

NODES = [EulerianMotion, LoadMotionModel, *SPECTRAL_NODES]
