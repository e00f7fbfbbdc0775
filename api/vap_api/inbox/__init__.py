"""Results/status inbox: Kafka `results` and `scenario_status` into PostgreSQL, exactly once in effect."""
