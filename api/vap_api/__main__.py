"""``python -m vap_api``: serve the REST API (same as ``vap-api``)."""

from vap_api.main import run

run()
