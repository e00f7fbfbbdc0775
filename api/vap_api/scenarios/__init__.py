"""Scenarios: register a camera stream, read it back, list, and shut it down."""
