"""``python -m vap_api.inbox``: run the results/status inbox (same as ``vap-inbox``)."""

from vap_api.inbox.consumer import main

main()
