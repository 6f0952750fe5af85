"""``python -m airflow_ecr_lab up|down|status|setup [--dir DIR] [--swarm] [--purge] [--install]``."""

import sys

from airflow_ecr_lab.cli import main

if __name__ == "__main__":
    sys.exit(main())
