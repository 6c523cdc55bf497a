"""dllabs' local launcher (``hydra/launcher=local``): each job its own process, one job per GPU at a time."""
