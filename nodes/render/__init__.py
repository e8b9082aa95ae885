"""Nodes that turn motion into frames and previews."""
from .preview import PreviewMotion
from .softmax_splat import SoftmaxSplatRender

NODES = [SoftmaxSplatRender, PreviewMotion]
