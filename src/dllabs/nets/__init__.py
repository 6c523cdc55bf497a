"""Plain ``nn.Module`` architectures: no optimiser, no logging."""

from dllabs.nets import flops  # noqa: F401  - FLOP formulas for the model summary (nn.LSTM), registered on import
