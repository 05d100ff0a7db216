"""Over-the-air model rollouts: :mod:`vibewatch.ota.rollout` decides (waves, outcomes,
aborts), without I/O."""
