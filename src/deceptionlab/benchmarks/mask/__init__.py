"""MASK: honesty items of six archetypes, their bank, scorer and the hub loader."""
