"""The lab's command line: ``python -m airflow_ecr_lab up|down|status|setup``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from airflow_ecr_lab.health import status
from airflow_ecr_lab.host import setup
from airflow_ecr_lab.lifecycle import down, up
from airflow_ecr_lab.messages import LabError
from airflow_ecr_lab.paths import DEFAULT_DIR, ENV_DIR


def main(argv: list[str] | None = None) -> int:
    """``python -m airflow_ecr_lab up|down|status|setup``.

    :param argv: command line arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(
        prog="python -m airflow_ecr_lab",
        description="Start, stop or check the airflow-ecr test lab; setup: the Debian packages it needs.",
    )
    parser.add_argument("command", choices=("up", "down", "status", "setup"))
    parser.add_argument("--dir", type=Path, default=None, help=f"lab directory (default: ${ENV_DIR} or {DEFAULT_DIR})")
    parser.add_argument(
        "--swarm", action="store_true", help="up: also a swarm: the lab's dockerd as manager, two worker engines"
    )
    parser.add_argument("--purge", action="store_true", help="down: also delete the lab directory")
    parser.add_argument(
        "--install", action="store_true", help="setup: install the missing packages (as root) instead of printing"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "setup":
            setup(install=args.install)
        elif args.command == "up":
            up(args.dir, swarm=args.swarm)
        elif args.command == "down":
            down(args.dir, purge=args.purge)
        else:
            return 0 if status(args.dir) else 1
    except LabError as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return 130
    return 0
