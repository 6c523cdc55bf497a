"""LightningModules: loss, metrics, optimiser/scheduler/regulariser wiring around a plain net."""
