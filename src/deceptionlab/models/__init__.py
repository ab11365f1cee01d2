"""The base model, loading it (with an adapter) and its precision."""
