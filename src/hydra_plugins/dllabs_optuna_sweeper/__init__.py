"""dllabs' Optuna sweeper: the hydra-optuna-sweeper plugin made resumable and tolerant of failed trials."""
