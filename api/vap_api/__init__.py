"""VAP API service: REST endpoints, the outbox relay and the results/status inbox."""
