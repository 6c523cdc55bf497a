"""Plain ``nn.Module`` architectures: no optimiser, no logging."""
