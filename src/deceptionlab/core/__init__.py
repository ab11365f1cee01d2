"""Parameters, conditions and their paths, records, statistics, tracking: no torch."""
