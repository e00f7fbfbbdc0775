"""Coordinates of the VideoScenario custom resource (crds/videoscenario.yaml)."""

GROUP = "vap.dev"
VERSION = "v1alpha1"
PLURAL = "videoscenarios"
KIND = "VideoScenario"
API_VERSION = f"{GROUP}/{VERSION}"
