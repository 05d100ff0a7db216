"""InfluxDB: line protocol encoding (pure) and the writers that send it."""
