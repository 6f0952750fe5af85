"""``python -m airflow_ecr.testing.emulator --config FILE [--port-file FILE] [--port N] [-v]``."""

import sys

from airflow_ecr.testing.emulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
