"""``python -m vap_api.outbox``: run the outbox relay (same as ``vap-relay``)."""

from vap_api.outbox.relay import main

main()
