"""Optuna searches: the search space, the study and its storage, one worker's sweep, its summary."""
