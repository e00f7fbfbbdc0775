"""Predictions: the stored detections of a scenario's frames, paged by frame number."""
