"""Shared building blocks of the Video Analytics Platform services."""
