"""sinkrepro: a workflow-managed reproduction of "Attention Sinks in Diffusion Transformers"."""
__version__ = "0.1.0"
