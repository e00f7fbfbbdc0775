"""Predictions: the stored detections of a scenario's frames, each result once, paged by an opaque cursor."""
