"""
How the benchmark measures: rounds, interleaving, and task processes forked from one parent.

- In-process figures: every approach in the benchmark's own process (libraries imported, many
  lookups done before), interleaved round by round, the order rotating every round.
- Per new task process: Airflow runs every task in a new process. One parent process (started as
  ``bench.py --zygote CONFIG``) imports what the DAGs import (Airflow, the operators and hooks of
  every approach, docker, boto3), looks up an unrelated Airflow connection from the metadata
  database (as a task process has before its operator runs), and then forks one child per sample.
  The child times the approach's credential step inside itself (the same :meth:`Approach.step` as
  the in-process figure) and sends the time back over a pipe; the parent is never touched by a
  step, so every child starts from the same state. Warm: the host cache filled; cold: emptied
  just before the fork. ECR calls are assigned to samples afterwards from the emulator's call log.
- Task processes at once: the same parent forks N children, releases them together on a cold host.
- End to end: real tasks through ``execute()`` in the benchmark's process, against the floor.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from approaches import CLOCK, PEERS, Approach, build, get_connection, instrument
from credential_helper import credential_helper_figures, helper_plan
from digests import digests_figures, digests_run, digests_spec
from fleet import fleet_figures, fleet_run, fleet_spec
from floor import FLOOR_STEPS, floor_figures, floor_inputs, time_floor_step
from lab_env import (
    HERE,
    UNRELATED_CONN,
    BenchEnv,
    BenchFailure,
    access_key,
    environment,
    expect,
    failing_as,
    in_new_process,
    one_line,
    remove_image,
    rotated,
    say,
)
from stats import paired_ratios, summary

STATES = ("warm", "cold")


def make_plan(quick: bool, only: str | None = None) -> dict[str, Any]:
    """The repetitions of one run."""
    if only == "per-process":
        return {
            "only": only,
            "per_process_rounds": 3 if quick else 40,
            "per_process_cli_rounds": 0,
            "per_process_approaches": ["ours", "helper"],
        }
    if only == "digests":
        return {"only": only, "digest_rounds": 2 if quick else 20}
    if only == "fleet":
        return {"only": only, "fleet_hosts": 6 if quick else 50, "fleet_processes": 3 if quick else 8}
    if only == "credential-helper":
        return helper_plan(quick)
    return {
        "credential_rounds": 3 if quick else 100,
        "per_process_rounds": 3 if quick else 100,
        # The CLI pattern costs seconds per task: it runs in the first rounds only (not in a quick run).
        "per_process_cli_rounds": 0 if quick else 3,
        "per_process_approaches": ["ours", "ours_secrets", "helper", "naive", "cli"],
        "e2e_rounds": 2 if quick else 30,
        "local_rounds": 1 if quick else 10,
        "cli_pull_rounds": 1 if quick else 5,
        "cli_local_rounds": 1 if quick else 3,
        "sequential_tasks": 20 if quick else 100,
        "processes": 32,
        # Quick: fewer processes for the peers (their count is one call per process anyway).
        "peer_processes": 8 if quick else 32,
        "digest_rounds": 2 if quick else 20,
    }


# -- the lab's registry logs: requests the registry served ---------------------------------------
_REQUEST = re.compile(r'http\.request\.id=(\S+).*?http\.request\.uri="?([^" ]+)')


class RegistryLog:
    """Counts the HTTP requests a lab registry received, from its log (one line per request event)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size

    def requests_since_mark(self) -> dict[str, int]:
        """{"auth": requests to the ``/v2/`` base endpoint (ping / login check), "total": all}."""
        size, deadline = -1, time.monotonic() + 2
        while time.monotonic() < deadline:  # the registry logs right after answering: let it settle
            now = self.path.stat().st_size
            if now == size:
                break
            size = now
            time.sleep(0.1)
        with self.path.open("rb") as log:
            log.seek(self.offset)
            text = log.read().decode(errors="replace")
        uris: dict[str, str] = {}
        for match in _REQUEST.finditer(text):
            uris[match.group(1)] = match.group(2)
        return {"auth": sum(1 for u in uris.values() if u == "/v2/"), "total": len(uris)}


# -- task processes: one parent, a fork per task --------------------------------------------------
def run_task_processes(env: BenchEnv, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Start the task-process parent (``bench.py --zygote``) for ``runs``; its results, in order."""
    config_path, results_path = env.work / "zygote.json", env.work / "zygote-results.json"
    results_path.unlink(missing_ok=True)
    config = {"lab": env.lab, "work": str(env.work), "runs": runs, "results": str(results_path)}
    config_path.write_text(json.dumps(config))
    # Its output (Airflow's task logs) goes where this process's goes: the task log file.
    done = subprocess.run(
        [sys.executable, str(HERE / "bench.py"), "--zygote", str(config_path)], timeout=1800, check=False
    )
    if not results_path.exists():
        raise BenchFailure("bench", "task-process parent", f"exited {done.returncode} without results")
    results = json.loads(results_path.read_text())
    if results.get("failure"):
        raise BenchFailure(*results["failure"])
    return list(results["runs"])


def zygote_main(config_path: str) -> int:
    """The task-process parent: prepare as a task process's parent is, then do each run of the config."""
    config = json.loads(Path(config_path).read_text())
    out: dict[str, Any] = {"runs": []}
    code = 0
    try:
        env = BenchEnv(config["lab"], Path(config["work"]))
        approaches = build(env)
        prepare_task_parent()
        for spec in config["runs"]:
            with environment(spec.get("env", {})):  # inherited by the forked task processes
                if spec["kind"] == "per_process":
                    out["runs"].append(per_process_run(env, approaches, spec))
                elif spec["kind"] == "digests":
                    out["runs"].append(digests_run(env, spec))
                elif spec["kind"] == "fleet":
                    out["runs"].append(fleet_run(env, spec))
                else:
                    out["runs"].append(concurrent_run(env, approaches[spec["approach"]], spec))
    except BenchFailure as failure:
        out["failure"], code = [failure.approach, failure.step, failure.cause], 1
    except Exception as exc:
        traceback.print_exc()  # into the task log
        out["failure"], code = ["bench", "task-process parent", one_line(exc)], 1
    Path(config["results"]).write_text(json.dumps(out))
    return code


def prepare_task_parent() -> None:
    """Import what the DAGs import and read an unrelated connection: the state a task process forks from."""
    import airflow  # noqa: F401
    import boto3  # noqa: F401
    import docker  # noqa: F401
    from airflow.providers.amazon.aws.hooks.ecr import EcrHook  # noqa: F401
    from airflow.providers.docker.operators.docker import DockerOperator  # noqa: F401

    import airflow_ecr  # noqa: F401
    from airflow_ecr.hooks.docker import EcrDockerHook  # noqa: F401
    from airflow_ecr.operators.docker import EcrDockerOperator  # noqa: F401
    from airflow_ecr.secrets.ecr import EcrDockerConnectionBackend  # noqa: F401

    # A task process has its Airflow connections set up (secrets backends, database) before its operator runs.
    with failing_as("bench", "task-process parent: reading an unrelated connection"):
        conn = get_connection(UNRELATED_CONN)
    expect(conn.login == "etl", "bench", "task-process parent", f"{UNRELATED_CONN} read back wrong")


def per_process_run(env: BenchEnv, approaches: dict[str, Approach], spec: dict[str, Any]) -> dict[str, Any]:
    """Warm and cold samples, one new task process each, interleaved round by round."""
    import airflow_ecr

    names = list(spec["approaches"])
    samples: dict[str, dict[str, list[float | None]]] = {s: {n: [] for n in names} for s in STATES}
    intervals: dict[str, list[tuple[str, float, float]]] = {n: [] for n in names}

    found: dict[str, Any] = {}

    def sample(approach: Approach, state: str) -> float:
        """One new task process doing the step; its time (ms)."""

        def child() -> dict[str, Any]:
            elapsed = approach.timed_step(f"{state} credential step in a new task process")
            return {"ms": elapsed * 1000, "airflow_ecr": airflow_ecr.__file__}

        got = in_new_process(child)
        found.setdefault("airflow_ecr", got["airflow_ecr"])
        return float(got["ms"])

    def floor_sample(step: str, inputs: dict[str, str]) -> float:
        """One new task process doing one floor step alone; its time (ms)."""
        return float(in_new_process(lambda: {"ms": time_floor_step(step, inputs) * 1000})["ms"])

    for name in names:  # the first task process fills the host cache (and shows that the step works)
        if approaches[name].cached:
            approaches[name].make_cold()
            sample(approaches[name], "first (cold)")
    floor: dict[str, list[float]] = {step: [] for step in FLOOR_STEPS}
    # The token file's path is the cache key's: every round's steps of ours write that same file.
    inputs = floor_inputs(env) if "ours" in names else {}
    for index in range(spec["rounds"]):
        for name in rotated(names, index):
            approach = approaches[name]
            if name == "cli" and index >= spec["cli_rounds"]:
                for state in STATES:
                    samples[state][name].append(None)
                continue
            for state in ("cold", "warm") if approach.cached else ("warm",):
                if state == "cold":
                    approach.make_cold()
                start = time.time()
                samples[state][name].append(sample(approach, state))
                intervals[name].append((state, start, time.time()))
            if not approach.cached:  # no cache: every task is a cold one
                samples["cold"][name].append(samples["warm"][name][-1])
                intervals[name].append(("cold", *intervals[name][-1][1:]))
        if inputs:  # in the same rounds: the least any warm step costs here (floor.py)
            for step in FLOOR_STEPS:
                floor[step].append(floor_sample(step, inputs))
    result: dict[str, Any] = {
        "kind": "per_process",
        "samples": samples,
        "intervals": intervals,
        "airflow_ecr": found.get("airflow_ecr"),
        "floor": floor,
    }
    if spec.get("profile"):
        result["profile"] = {
            state: profile_in_new_process(approaches["ours"], state) for state in ("warm", "cold") if "ours" in names
        }
    return result


def profile_in_new_process(approach: Approach, state: str, top: int = 30) -> str:
    """cProfile of one credential step in a new task process: the top functions by cumulative time."""

    def profiled() -> dict[str, Any]:
        import cProfile
        import io
        import pstats

        profile = cProfile.Profile()
        profile.enable()
        elapsed = approach.timed_step(f"{state} credential step, profiled")
        profile.disable()
        stream = io.StringIO()
        stats = pstats.Stats(profile, stream=stream)
        stats.sort_stats("cumulative").print_stats(top)
        text = re.sub(r"/\S*/site-packages/", "", stream.getvalue())
        return {"text": f"{approach.name}, {state}, one new task process: {elapsed * 1000:.3f} ms (profiled)\n{text}"}

    if state == "cold":
        approach.make_cold()
    return str(in_new_process(profiled)["text"])


def concurrent_run(env: BenchEnv, approach: Approach, spec: dict[str, Any]) -> dict[str, Any]:
    """N task processes forked at once, released together; each does the step for one registry."""
    processes = spec["processes"]
    release_read, release_write = os.pipe()
    report_read, report_write = os.pipe()
    pids = []
    started_at, start = time.time(), time.monotonic()
    for index in range(processes):
        pid = os.fork()
        if pid == 0:
            code = 1
            message = ""
            try:
                os.close(release_write)
                os.close(report_read)
                os.read(release_read, 1)  # returns when the parent closes the pipe: all start together
                with approach.failing_as(f"{processes} task processes at once"):
                    approach.one_registry(env.accounts[index % len(env.accounts)])
                code = 0
            except BenchFailure as failure:
                message = failure.cause
            except BaseException as exc:
                message = one_line(exc)
            finally:
                if message:  # one short line: a pipe write below PIPE_BUF is never interleaved
                    with contextlib.suppress(BaseException):
                        os.write(report_write, (message[:1000].replace("\n", " ") + "\n").encode())
                os._exit(code)
        pids.append(pid)
    os.close(release_write)
    os.close(report_write)
    released = time.monotonic()
    errors = []
    with os.fdopen(report_read, "r", errors="replace") as report:
        errors = [line.strip() for line in report if line.strip()]
    failed = sum(1 for pid in pids if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0)
    os.close(release_read)
    if failed:
        raise BenchFailure(
            approach.name,
            f"{processes} task processes at once",
            f"{failed} of {processes} failed; the first said: {errors[0] if errors else 'nothing'}",
        )
    return {
        "kind": "concurrent",
        "approach": approach.name,
        "processes": processes,
        "failed": failed,
        "fork_s": round(released - start, 3),
        "wall_s": round(time.monotonic() - released, 3),
        # The ECR calls of this run are those the emulator received in between.
        "window": [started_at, time.time()],
    }


def per_process_spec(plan: dict[str, Any], profile: bool = False) -> dict[str, Any]:
    return {
        "kind": "per_process",
        "approaches": plan["per_process_approaches"],
        "rounds": plan["per_process_rounds"],
        "cli_rounds": plan["per_process_cli_rounds"],
        "profile": profile,
    }


def concurrent_specs(env: BenchEnv, plan: dict[str, Any]) -> list[dict[str, Any]]:
    specs = []
    for approach in ("ours", "helper", "naive", "cli"):
        cold = env.work / f"cold-{approach}"
        settings = env.helper_settings(cold) if approach == "helper" else {"AIRFLOW__ECR__CACHE_DIR": str(cold)}
        count = plan["processes"] if approach == "ours" else plan["peer_processes"]
        specs.append({"kind": "concurrent", "approach": approach, "processes": count, "env": settings})
    return specs


def per_process_figures(env: BenchEnv, result: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    """Summaries, paired ratios, and the ECR calls made during each state (from the emulator's log)."""

    samples = result["samples"]
    names = list(samples["warm"])
    from airflow_ecr_lab import emulator_client

    emulator = emulator_client(env.lab)
    calls: dict[str, dict[str, int]] = {s: dict.fromkeys(names, 0) for s in STATES}
    for name in names:
        times = [c["time"] for c in emulator.calls(access_key(name))]
        for state, start, end in result["intervals"][name]:
            calls[state][name] += sum(1 for t in times if start <= t <= end)
    figures: dict[str, Any] = {
        "credential_overhead_per_process_ms": {s: {n: summary(samples[s][n]) for n in names} for s in STATES},
        "per_process": {
            "rounds": plan["per_process_rounds"],
            "cli_rounds": plan["per_process_cli_rounds"],
            "airflow_ecr": result.get("airflow_ecr"),
            # Proof that warm is warm and cold is cold: the calls made during each state's steps.
            "ecr_calls": calls,
        },
    }
    if result.get("floor", {}).get("config"):
        figures["per_process"]["floor"] = floor_figures(result["floor"])
    if result.get("profile"):
        figures["per_process"]["profile"] = result["profile"]
    peers = [p for p in (*PEERS, "ours_secrets") if p in names and "ours" in names]
    figures["ratios"] = {
        f"credential_overhead_per_process_{s}": {p: paired_ratios(samples[s][p], samples[s]["ours"]) for p in peers}
        for s in STATES
    }
    return figures


# -- the run ------------------------------------------------------------------------------------------
def collect(env: BenchEnv, plan: dict[str, Any], profile: bool = False) -> dict[str, Any]:
    """All figures of one run; every loop interleaves the approaches round by round."""
    approaches = build(env)
    figures: dict[str, Any] = {"plan": plan}
    if plan.get("only") == "per-process":
        say(f"per new task process: {plan['per_process_rounds']} rounds of {', '.join(plan['per_process_approaches'])}")
        (result,) = run_task_processes(env, [per_process_spec(plan, profile)])
        figures.update(per_process_figures(env, result, plan))
        return figures
    if plan.get("only") == "digests":
        say(f"what recording and pinning digests cost: {plan['digest_rounds']} rounds")
        (result,) = run_task_processes(env, [digests_spec(env, plan)])
        figures["image_record"] = digests_figures(result)
        return figures
    if plan.get("only") == "credential-helper":
        figures["credential_helper"] = credential_helper_figures(env, plan)
        return figures
    if plan.get("only") == "fleet":
        say(f"a cold fleet: {plan['fleet_hosts']} hosts x {plan['fleet_processes']} task processes at once")
        (result,) = run_task_processes(env, [fleet_spec(plan)])
        figures["fleet"] = fleet_figures(env, result)
        return figures

    # Warm-up: imports, first connections; leaves ours' and the helper's host caches warm.
    for name in ("floor", "ours", "helper", "naive"):
        with approaches[name].failing_as("warm-up task"):
            remove_image(env, env.floor_image if name == "floor" else env.image)
            approaches[name].task()
    approaches["ours_secrets"].timed_step("warm-up")

    # 1. Credential overhead in this process, warm and cold.
    say(f"credential step in this process: {plan['credential_rounds']} rounds")
    in_process, ratios, warm_calls = in_process_rounds(env, approaches, plan)
    figures["credential_overhead_ms"] = in_process

    # 2. ECR calls: sequential tasks on one host.
    tasks = plan["sequential_tasks"]
    say(f"ECR calls: {tasks} sequential tasks")
    sequential: dict[str, int] = {}
    for name in ("ours", "ours_secrets", "helper", "naive", "cli"):
        approach = approaches[name]
        approach.make_cold()
        before = env.calls(name)
        for _ in range(tasks):
            if name == "cli":  # the token fetch only: its delete+add subprocesses make no ECR call
                with approach.failing_as("token fetch"):
                    approach.one_registry(env.account)
            else:
                approach.timed_step("sequential tasks")
        sequential[name] = env.calls(name) - before

    # 3. New task processes forked from one parent: warm and cold steps, then N at once (cold host).
    say(f"per new task process: {plan['per_process_rounds']} rounds; then {plan['processes']} task processes at once")
    specs = concurrent_specs(env, plan)
    per_process, digests, *together = run_task_processes(
        env, [per_process_spec(plan, profile), digests_spec(env, plan), *specs]
    )
    figures["image_record"] = digests_figures(digests)
    per = per_process_figures(env, per_process, plan)
    ratios.update(per.pop("ratios"))
    figures.update(per)
    concurrent = {}
    for result in together:
        name = result["approach"]
        per_registry = env.calls_by_registry(name, *result.pop("window"))
        result.update(
            ecr_calls=sum(per_registry.values()), ecr_calls_per_registry=per_registry, registries=len(env.accounts)
        )
        concurrent[name] = result
    figures["ecr_calls"] = {
        "sequential_tasks": {"tasks": tasks, **sequential},
        "concurrent_processes": concurrent,
        # Proof that the warm figures are warm: the calls made during them (naive: one per task).
        "during_warm_credential_steps": {"steps": plan["credential_rounds"], **warm_calls},
    }

    # 4. Real tasks: pull (image absent) and image already local, against the floor.
    instrument()
    end_to_end(env, approaches, plan, figures, ratios)
    figures["ratios"] = ratios
    return figures


def in_process_rounds(
    env: BenchEnv, approaches: dict[str, Approach], plan: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, int]]:
    warm_names = ["ours", "ours_secrets", "helper", "naive"]
    warm: dict[str, list[float | None]] = {n: [] for n in warm_names}
    cold: dict[str, list[float | None]] = {n: [] for n in ("ours", "ours_secrets", "helper")}
    warm_calls = dict.fromkeys(warm_names, 0)
    for index in range(plan["credential_rounds"]):
        for name in rotated(warm_names, index):
            before = env.calls(name)
            warm[name].append(approaches[name].timed_step("warm credential step, in process") * 1000)
            warm_calls[name] += env.calls(name) - before
        for name in rotated(list(cold), index):
            approaches[name].make_cold()
            cold[name].append(approaches[name].timed_step("cold credential step, in process") * 1000)
    figures = {
        "warm": {n: summary(s) for n, s in warm.items()},
        # The naive glue and the CLI pattern keep no cache: every task is a cold one.
        "cold": {**{n: summary(s) for n, s in cold.items()}, "naive": summary(warm["naive"])},
    }
    ratios: dict[str, Any] = {
        "credential_overhead_warm": {p: paired_ratios(warm[p], warm["ours"]) for p in ("helper", "naive")},
        "credential_overhead_cold": {
            "helper": paired_ratios(cold["helper"], cold["ours"]),
            "naive": paired_ratios(warm["naive"], cold["ours"]),
        },
    }
    return figures, ratios, warm_calls


def measured_task(env: BenchEnv, approach: Approach, kind: str) -> dict[str, Any]:
    """Run one task; its wall time, credential time, ECR calls and registry requests."""
    floor = approach.name == "floor"
    log = RegistryLog(env.floor_log if floor else env.registry_log)
    log.mark()
    calls_before = 0 if floor else env.calls(approach.name)
    CLOCK.reset()
    with approach.failing_as(f"end-to-end task ({kind})"):
        start = time.perf_counter()
        output = approach.task()
        elapsed = time.perf_counter() - start
    expect(output == "bench", approach.name, f"end-to-end task ({kind})", f"the task printed {output!r}, not 'bench'")
    return {
        "seconds": elapsed,
        "credential_seconds": CLOCK.seconds,
        "ecr_calls": 0 if floor else env.calls(approach.name) - calls_before,
        "registry": log.requests_since_mark(),
    }


def end_to_end(
    env: BenchEnv,
    approaches: dict[str, Approach],
    plan: dict[str, Any],
    figures: dict[str, Any],
    ratios: dict[str, Any],
) -> None:
    for kind, rounds in (("pull", plan["e2e_rounds"]), ("image_local", plan["local_rounds"])):
        names = ["floor", "ours", "helper", "naive", "cli"]
        cli_rounds = plan["cli_pull_rounds" if kind == "pull" else "cli_local_rounds"]
        say(f"end-to-end tasks, {kind}: {rounds} rounds (the CLI pattern in the first {cli_rounds})")
        samples: dict[str, list[dict[str, Any] | None]] = {n: [] for n in names}
        if kind == "image_local":  # the images stay from here on: the tasks remove containers only
            for name in ("floor", "ours"):
                with approaches[name].failing_as("end-to-end task (image_local warm-up)"):
                    approaches[name].task()
        ours_cold: list[float | None] = []  # a cold lookup in every round, to pair the CLI pattern's with
        for index in range(rounds):
            if kind == "pull":
                approaches["ours"].make_cold()
                ours_cold.append(approaches["ours"].timed_step("cold credential step, in process") * 1000)
            for name in rotated(names, index):
                if name == "cli" and index >= cli_rounds:
                    samples["cli"].append(None)
                    continue
                if kind == "pull":
                    remove_image(env, env.floor_image if name == "floor" else env.image)
                samples[name].append(measured_task(env, approaches[name], kind))

        def column(name: str, key: str, got: dict[str, Any] = samples) -> list[float | None]:
            return [None if s is None else s[key] * 1000 for s in got[name]]

        def taken(name: str, got: dict[str, Any] = samples) -> list[dict[str, Any]]:
            return [s for s in got[name] if s is not None]

        figures.setdefault("end_to_end_ms", {})[kind] = {n: summary(column(n, "seconds")) for n in names}
        figures.setdefault("credential_in_task_ms", {})[kind] = {
            n: summary(column(n, "credential_seconds")) for n in names if n != "floor"
        }
        figures.setdefault("ecr_calls_per_task", {})[kind] = {
            n: max(s["ecr_calls"] for s in taken(n)) for n in names if n != "floor"
        }
        figures.setdefault("registry_requests_per_task", {})[kind] = {
            n: {
                "auth": max(s["registry"]["auth"] for s in taken(n)),
                "total": max(s["registry"]["total"] for s in taken(n)),
            }
            for n in names
        }
        ratios[f"end_to_end_{kind}_vs_floor"] = {
            n: paired_ratios(column(n, "seconds"), column("floor", "seconds")) for n in names if n != "floor"
        }
        if kind == "image_local":
            figures["credential_overhead_ms"]["image_local"] = figures["credential_in_task_ms"][kind]
        else:
            # The CLI pattern's credential step is timed inside its real tasks (it keeps no cache:
            # warm = cold), and paired with ours' in-task lookup (warm host cache) of the same round.
            cli = figures["credential_in_task_ms"][kind]["cli"]
            figures["credential_overhead_ms"]["warm"]["cli"] = figures["credential_overhead_ms"]["cold"]["cli"] = cli
            in_task = column("ours", "credential_seconds")
            ratios["credential_overhead_warm"]["cli"] = paired_ratios(column("cli", "credential_seconds"), in_task)
            ratios["credential_overhead_cold"]["cli"] = paired_ratios(column("cli", "credential_seconds"), ours_cold)
            ratios["credential_overhead_in_task_warm"] = {
                p: paired_ratios(column(p, "credential_seconds"), in_task) for p in PEERS
            }
