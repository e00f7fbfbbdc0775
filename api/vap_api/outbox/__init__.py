"""Transactional outbox: commands written with the scenario change, published by the relay."""
