"""vibewatch: predictive maintenance for fleets of vibration sensors."""

__version__ = "0.1.0"
