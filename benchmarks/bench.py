"""
Benchmark: airflow-ecr side by side with the ways people pull ECR images from Airflow today.

One run measures every approach (``approaches.py``) against the same lab (a real Docker engine,
registries demanding ECR-style basic auth by their real names, the ECR API emulator; see
``airflow_ecr_lab``): the credential step per new task process and in-process, ECR calls,
registry round trips and end-to-end tasks (``measure.py``), and writes ``latest.json``,
``latest.md`` and ``latest.png`` (``report.py``). What each figure measures is written into the
results (``notes``, from ``targets.py``) and the Markdown.

Usage (as root, with a lab up; ``scripts/bench.sh`` / ``make bench`` start one)::

    python benchmarks/bench.py --lab DIR [--quick] [--out FILE.json]
    python benchmarks/bench.py --lab DIR --only per-process [--profile]   # ours and the helper, < 1 min
    python benchmarks/bench.py --lab DIR --only digests   # what recording and pinning digests cost
    python benchmarks/bench.py --lab DIR --only fleet     # a cold fleet against ECR's rate limit
    python benchmarks/bench.py --lab DIR --only credential-helper   # our Docker credential helper vs the Go one

The run re-executes itself in a private mount namespace (``lab_env.py``) whose ``/etc/hosts`` points
the credential helper's ECR API names at a TLS forwarder in front of the emulator; nothing global
changes. A failure ends the run with one line: ``bench: FAILED <approach>, <step>: <cause>``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from approaches import LABELS, Helper
from lab_env import (
    HERE,
    NAMESPACE_MARK,
    BenchEnv,
    BenchFailure,
    one_line,
    reexec_in_private_mount_namespace,
    say,
    task_logs_to,
)
from measure import collect, make_plan, zygote_main
from targets import NOTES, evaluate_targets


def versions(env: BenchEnv) -> dict[str, str]:
    from importlib.metadata import version

    import docker

    import airflow_ecr

    found = {name: version(name) for name in (
        "apache-airflow", "apache-airflow-providers-docker", "apache-airflow-providers-amazon", "docker",
        "boto3", "airflow-ecr",
    )}  # fmt: skip
    found["airflow-ecr"] += f" (imported from {Path(airflow_ecr.__file__).parent})"
    client = docker.APIClient(base_url=env.docker_url)
    found["dockerd"] = str(client.version().get("Version"))
    client.close()
    helper = subprocess.run(["docker-credential-ecr-login", "-v"], capture_output=True, text=True, check=False)
    found["docker-credential-ecr-login"] = " ".join(
        line.split(":", 1)[1].strip() for line in helper.stdout.splitlines() if line.startswith("Version")
    )
    registry = subprocess.run(["docker-registry", "--version"], capture_output=True, text=True, check=False)
    found["docker-registry"] = registry.stdout.strip().split()[-1] if registry.stdout.strip() else "?"
    return found


def machine() -> dict[str, Any]:
    memory = ""
    with contextlib.suppress(OSError):
        memory = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next(
            (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
             if line.startswith("model name")),
            "",
        )  # fmt: skip
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
    }


def command_line(args: argparse.Namespace) -> str:
    parts = ["python benchmarks/bench.py"]
    parts += ["--quick"] if args.quick else []
    parts += ["--only", args.only] if args.only else []
    parts += ["--profile"] if args.profile else []
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    import airflow_ecr_lab as lab_module

    lab_dir = Path(args.lab) if args.lab else lab_module.default_dir()
    if not lab_module.is_up(lab_dir):
        print(
            f"bench: no healthy lab at {lab_dir}: start one with `python -m airflow_ecr_lab up --dir "
            f"{lab_dir}`, or run scripts/bench.sh (make bench), which does it all",
            file=sys.stderr,
        )
        return 2
    if args.out:
        out = Path(args.out).resolve()
    elif args.only == "fleet" and not args.quick:
        out = HERE / "results" / "fleet.json"
    elif args.only == "credential-helper" and not args.quick:
        out = HERE / "results" / "credential_helper.json"
    elif args.quick or args.only:
        out = Path(tempfile.mkdtemp(prefix="airflow-ecr-bench-quick-")) / "latest.json"
    else:
        out = HERE / "results" / "latest.json"
    # SIGTERM unwinds like Ctrl-C: the forwarder is stopped and the temp files removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="airflow-ecr-bench-"))
    env = BenchEnv(lab_module.load(lab_dir), work)
    log = work / "tasks.log"
    load_before = os.getloadavg()
    failure = ""
    try:
        with task_logs_to(log):
            try:
                env.setup(lambda env: Helper(env).preflight())
                figures = collect(env, make_plan(args.quick, args.only), profile=args.profile)
            except BenchFailure as exc:
                failure = str(exc)
            except Exception as exc:
                traceback.print_exc()  # into the task log
                failure = f"bench, internal error: {one_line(exc)}"
        if failure:
            kept = out.with_name(out.stem + ".failure.log")
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, kept)
            print(f"bench: FAILED {failure} (task logs: {kept})", file=sys.stderr)
            return 1
        report = {
            "benchmark": "airflow-ecr and its peers",
            "quick": args.quick,
            "only": args.only,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration_s": round(time.monotonic() - started, 1),
            "command": command_line(args),
            "machine": {**machine(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
            "versions": versions(env),
            "approaches": LABELS,
            "figures": figures,
            "targets": evaluate_targets(figures),
            "notes": NOTES,
        }
    finally:
        env.stop()
        shutil.rmtree(work, ignore_errors=True)
    from report import write_outputs  # benchmarks/report.py (matplotlib: imported only now)

    paths = write_outputs(report, out)
    print(Path(paths["md"]).read_text())
    say(f"written: {', '.join(str(p) for p in paths.values())} in {report['duration_s']} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0].strip())
    parser.add_argument("--quick", action="store_true", help="a few repetitions (a smoke run, about a minute)")
    parser.add_argument(
        "--lab", help="the lab directory (default: $AIRFLOW_ECR_LAB_DIR, else the lab's private default)"
    )
    parser.add_argument(
        "--only",
        choices=["per-process", "digests", "fleet", "credential-helper"],
        help="per-process: only the per-new-task-process warm and cold figures of airflow-ecr and the "
        "credential helper (well under a minute); digests: only what recording and pinning image digests "
        "costs a task (results in a temp dir unless --out); fleet: N cold hosts x M task processes at once "
        "against the emulator's ECR rate limit (benchmarks/results/fleet.json unless --quick or --out); "
        "credential-helper: docker-credential-airflow-ecr against docker-credential-ecr-login, warm get per "
        "process and N cold gets at once (benchmarks/results/credential_helper.json unless --quick or --out)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="add a cProfile of airflow-ecr's step in a new task process"
    )
    parser.add_argument(
        "--out",
        help="the JSON file; the .md and .png go next to it "
        "(default: benchmarks/results/latest.json; with --quick or --only: latest.json in a temp dir)",
    )
    parser.add_argument("--zygote", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.zygote:
        return zygote_main(args.zygote)
    if not os.environ.get(NAMESPACE_MARK):
        return reexec_in_private_mount_namespace(Path(__file__).resolve(), argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
