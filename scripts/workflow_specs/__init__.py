"""Compact descriptions of the example graphs, one module per topic (see scripts/make_workflows.py)."""
