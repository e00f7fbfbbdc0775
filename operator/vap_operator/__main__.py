"""``python -m vap_operator`` = ``vap-operator``; ``python -m vap_operator orchestrator`` = ``vap-orchestrator``."""

import sys

from vap_operator.cli import main, orchestrator_main

if sys.argv[1:] == ["orchestrator"]:
    orchestrator_main()
elif sys.argv[1:]:
    sys.exit(f"usage: python -m vap_operator [orchestrator]  (got {sys.argv[1:]})")
else:
    main()
