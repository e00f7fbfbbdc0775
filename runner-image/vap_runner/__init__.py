"""VAP runner: one process per scenario that decodes its stream and publishes detections."""
