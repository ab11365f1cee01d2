"""Capability: GSM8K gold log-likelihood, the knowledge probe, exact match."""
