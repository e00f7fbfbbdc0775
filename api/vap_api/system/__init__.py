"""Process endpoints: liveness, readiness, Prometheus metrics."""
