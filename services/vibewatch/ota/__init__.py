"""Over-the-air model rollouts (``docs/ota.md``): :mod:`~vibewatch.ota.rollout` decides
(waves, outcomes, aborts) without I/O, :mod:`~vibewatch.ota.store` keeps rollouts and
devices in the state database, :mod:`~vibewatch.ota.controller` carries rollouts out over
MQTT, :mod:`~vibewatch.ota.cli` is ``vibewatch ota`` and ``vibewatch devices``."""
