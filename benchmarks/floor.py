"""
The floor of a warm credential step in a new task process: what the few things every warm step
must do cost on this machine, each timed alone in a task process forked from the same parent as
the approaches' steps (``measure.py``), in the same rounds.

A warm step that keeps Airflow's conventions and the trust boundaries cannot do less than:

- read its settings through Airflow's configuration (one ``[ecr]`` option: ``conf.get``);
- read the cached token: open, ``fstat`` and read one token file of the host cache, parse its JSON;
- teach the secret masker the token before anything can log it: compile the two patterns that cover
  every form of an ECR password (``mask_patterns``; one ``re.compile``, the least a regex masker
  does, and what airflow-ecr's step adds to Airflow's own masker).

The sum of their medians is the least a warm step can cost here, whatever its code; ``targets.py``
sets it beside the targets (under 1 ms, 10x below the credential helper).
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

from lab_env import BenchEnv, BenchFailure
from stats import summary

# The parts of the floor, in order, and what each times (the timer alone first: what timing costs).
FLOOR_STEPS = {
    "timer": "the timer alone (nothing timed)",
    "config": "one [ecr] option read through Airflow's configuration (conf.get)",
    "token_file": "open, fstat and read one token file of the host cache, parse its JSON",
    "masker": "compile the two patterns that cover an ECR password's forms (one re.compile)",
}
FLOOR_PARTS = ("config", "token_file", "masker")


def floor_inputs(env: BenchEnv) -> dict[str, str]:
    """
    What the floor's steps read, found once in the parent (after the first task filled the host
    cache): airflow-ecr's token file for the lab's registry, and the masker patterns of its password.

    :param env: the benchmark's environment.
    """
    from airflow_ecr.tokens.token import mask_patterns

    files = sorted(env.ours_cache.glob("*.json"), key=lambda p: p.stat().st_size, reverse=True)
    if not files:
        raise BenchFailure("floor", "finding a cached token", f"no token file in {env.ours_cache}")
    password = json.loads(files[0].read_text())["password"]
    return {"token_file": str(files[0]), "masker_patterns": "|".join(mask_patterns(password))}


def time_floor_step(name: str, inputs: dict[str, str]) -> float:
    """
    One floor step, timed inside the (new) task process that runs it (seconds).

    :param name: one of :data:`FLOOR_STEPS`.
    :param inputs: :func:`floor_inputs`.
    """
    from airflow_ecr._compat import conf
    from airflow_ecr.settings import SECTION

    start = time.perf_counter()
    if name == "config":
        conf.get(SECTION, "cache_dir", fallback="")
    elif name == "token_file":
        fd = os.open(inputs["token_file"], os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            json.loads(os.read(fd, size))
        finally:
            os.close(fd)
    elif name == "masker":
        re.compile(inputs["masker_patterns"])
    return time.perf_counter() - start


def floor_figures(samples: dict[str, list[float]]) -> dict[str, Any]:
    """
    Each floor step's summary (ms), and the sum of the parts' medians: the least a warm step costs.

    :param samples: per floor step, its times (ms), one new task process each.
    """
    steps = {name: summary(samples[name]) for name in FLOOR_STEPS}
    return {
        "steps_ms": steps,
        "floor_ms": round(sum(steps[name]["median"] for name in FLOOR_PARTS), 3),
        "labels": dict(FLOOR_STEPS),
    }
