"""dllabs' Optuna sweeper (``hydra/sweeper=optuna``): Hydra's Sweeper interface over an Optuna study."""
