"""E2's Optuna study."""
