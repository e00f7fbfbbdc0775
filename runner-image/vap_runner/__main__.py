import sys

from vap_runner.cli import main

if __name__ == "__main__":
    sys.exit(main())
