"""E3: simulated users, their raters and scenarios, and the trajectories they produce."""
