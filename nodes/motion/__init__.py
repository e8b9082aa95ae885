"""Nodes that make, convert and sample motion."""
from .eulerian import EulerianMotion

NODES = [EulerianMotion]
