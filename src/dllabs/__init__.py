"""dllabs: seven classic deep-learning labs as one Hydra-configured PyTorch Lightning framework."""

__version__ = "0.1.0"
