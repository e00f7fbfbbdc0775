"""The inbox: Kafka `results`, `scenario_status` and `events` into PostgreSQL, exactly once in effect."""
