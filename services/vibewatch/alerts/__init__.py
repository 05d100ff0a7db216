"""Alerts: rules over what the devices and the services report, Alertmanager-compatible
grouping and notifications, and signed, durable webhook delivery (``docs/alerts.md``)."""
