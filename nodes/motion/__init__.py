"""Nodes that make, convert and sample motion."""
from .eulerian import EulerianMotion
from .load_model import LoadMotionModel

NODES = [EulerianMotion, LoadMotionModel]
