"""Nodes that turn what a user draws or writes into motion."""
from .sparse_flow import TracksToSparseFlow
from .sparse_trajectory import SparseTrajectoryToFlow

NODES = [SparseTrajectoryToFlow, TracksToSparseFlow]
