"""The ingestion service: MQTT messages in, InfluxDB points out, nothing lost."""
