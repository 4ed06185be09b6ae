"""Everything that talks to Triton: the client, the embedded server, repository set-up."""

from gateway.inference.client import InferenceClient, InferenceUnavailable
from gateway.inference.embedded import EmbeddedTriton, TritonStartError, start_triton

__all__ = [
    "EmbeddedTriton",
    "InferenceClient",
    "InferenceUnavailable",
    "TritonStartError",
    "start_triton",
]
