"""The reports: shared parts, one module per experiment, the dose-response fit."""
