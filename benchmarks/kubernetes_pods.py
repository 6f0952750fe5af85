"""
What Kubernetes pods' pull secrets cost (issue 24): ECR calls and Kubernetes API calls per task, and
the Secrets left behind, against the tests' real Kubernetes API server (``tests/helpers/kube.py``:
etcd, kube-apiserver with RBAC, kube-controller-manager for garbage collection) and the lab's ECR
emulator, under the least-privilege ServiceAccount of ``docs/kubernetes.md``.

Each task is a new process forked at the same moment (a task process of KubernetesPodOperator), and
does what ``EcrKubernetesPodOperator`` does around the pod: make the pod's pull secret
(``PullSecrets.attach``), create the pod (as the operator does), hand the Secret to the pod
(``own_when_created``). Kubernetes API calls are counted per task on the client (airflow-ecr's calls
apart from the pod's own creation); ECR calls by the emulator, per run (a unique access key). Then
every pod is deleted and the Secrets still there after the garbage collector had 30 s are counted.
No pod runs (there is no node): what is measured is everything airflow-ecr adds, not the pull.

Scenarios, ``--tasks N`` each (default 50):

- ``one_worker``: N tasks at once on one worker (one host cache, as Celery or Local executors);
- ``executor_staggered``: N tasks that each start with an empty host cache (KubernetesExecutor: each
  task its own pod), one after another as pods start over time;
- ``executor_at_once``: the same N released together: nothing is in the namespace yet when they
  look; one takes the namespace's fetch lease and asks ECR, the others wait for its pull secret.

Usage: ``python benchmarks/kubernetes_pods.py --lab DIR [--tasks N] [--out FILE.json]`` (as root, a lab up;
``make bench-kubernetes`` starts one). Writes ``benchmarks/results/kubernetes.{json,md}`` by default.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the control plane shared with the tests

from helpers.kube import Cluster, control_plane  # noqa: E402

SCENARIOS = ("one_worker", "executor_staggered", "executor_at_once")
AWS_CONN = "aws_bench"


class CountingApi:
    """A ``CoreV1Api`` that counts the calls made through it, by method name."""

    def __init__(self, api: Any) -> None:
        self._api = api
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._api, name)
        if not callable(method):
            return method

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return method(*args, **kwargs)

        return counted


def one_task(index: int, kubeconfig: str, namespace: str, image: str, start: float, results: Any) -> None:
    """One task process: wait for the release, then the pull secret, the pod, the hand-over."""
    from kubernetes import client, config
    from kubernetes.client import V1Container, V1ObjectMeta, V1Pod, V1PodSpec

    from airflow_ecr import process_state
    from airflow_ecr.kubernetes.attach import PullSecrets

    process_state.reset()  # a new task process
    api = CountingApi(client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig)))
    pod = V1Pod(
        metadata=V1ObjectMeta(name=f"task-{index}", namespace=namespace, labels={}),
        spec=V1PodSpec(containers=[V1Container(name="base", image=image)], restart_policy="Never"),
    )
    time.sleep(max(0.0, start - time.time()))
    began = time.perf_counter()
    try:
        pull_secrets = PullSecrets(api)  # type: ignore[arg-type]
        name = pull_secrets.attach(pod, AWS_CONN)
        ours = dict(api.calls)
        api._api.create_namespaced_pod(namespace, pod)  # the operator's own call, not counted as ours
        if name is not None:
            pull_secrets.own_when_created(namespace, name, pod.metadata.name)
        results.put({"task": index, "ok": True, "k8s_calls": sum(api.calls.values()), "by_call": dict(api.calls),
                     "before_pod": sum(ours.values()), "seconds": time.perf_counter() - began})  # fmt: skip
    except Exception as err:
        results.put({"task": index, "ok": False, "error": f"{type(err).__name__}: {err}"[:300]})


def run_scenario(scenario: str, cluster: Cluster, lab: dict[str, Any], tasks: int, work: Path) -> dict[str, Any]:

    namespace = scenario.replace("_", "-")
    token = cluster.namespace_with_role(namespace)
    kubeconfig = str(cluster.kubeconfig(namespace, token, namespace))
    access_key = "AKIA" + secrets.token_hex(8).upper()
    os.environ[f"AIRFLOW_CONN_{AWS_CONN.upper()}"] = json.dumps(
        {"conn_type": "aws", "login": access_key, "password": "bench",
         "extra": {"region_name": lab["accounts"][0]["region"], "endpoint_url": lab["emulator_url"]}}
    )  # fmt: skip
    image = f"{lab['accounts'][0]['host']}/app/hello:1"
    shared_cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = []
    started = time.perf_counter()
    for index in range(tasks):
        cache = shared_cache if scenario == "one_worker" else Path(tempfile.mkdtemp(prefix="cache-", dir=work))
        os.environ["AIRFLOW__ECR__CACHE_DIR"] = str(cache)
        release = time.time() + (0.5 if scenario != "executor_staggered" else 0.0)
        proc = context.Process(target=one_task, args=(index, kubeconfig, namespace, image, release, results))
        proc.start()
        processes.append(proc)
        if scenario == "executor_staggered":
            proc.join(60)  # the next task's pod starts after this one's
    answers = [results.get(timeout=180) for _ in processes]
    for proc in processes:
        proc.join(60)
    elapsed = time.perf_counter() - started
    from airflow_ecr_lab import emulator_client

    calls = emulator_client(lab).calls(access_key=access_key)
    # Every pod deleted: the garbage collector deletes their Secrets.
    for index in range(tasks):
        cluster.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/task-{index}")
    deadline = time.monotonic() + 30
    selector = "labelSelector=airflow-ecr.io%2Fpull-secret%3Dtrue"
    while (left := cluster.request("GET", f"/api/v1/namespaces/{namespace}/secrets?{selector}")["items"]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)
    ok = [a for a in answers if a["ok"]]
    per_task = sorted(a["k8s_calls"] for a in ok)
    return {
        "scenario": scenario,
        "tasks": tasks,
        "failed": [a for a in answers if not a["ok"]],
        "ecr_calls": len(calls),
        "ecr_calls_per_task": round(len(calls) / tasks, 3),
        "k8s_calls_per_task": {"min": per_task[0], "median": per_task[len(per_task) // 2], "max": per_task[-1]}
        if per_task
        else None,
        "k8s_calls_by_method": dict(sum((Counter(a["by_call"]) for a in ok), Counter())),
        "secrets_left_after_pods_deleted": len(left),
        "seconds": round(elapsed, 1),
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        "# Kubernetes pull secrets: what each task costs",
        "",
        f"Measured {report['measured']} on {report['machine']} with `python benchmarks/kubernetes_pods.py` "
        f"({report['tasks']} task processes per scenario, a real kube-apiserver {report['kubernetes']}; "
        "see the module's docstring for what each scenario is).",
        "",
        "| scenario | tasks failed | ECR calls (per task) | Kubernetes API calls per task by airflow-ecr "
        "(min / median / max) | Secrets left after the pods were deleted | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["scenarios"]:
        k8s = r["k8s_calls_per_task"] or {}
        lines.append(
            f"| {r['scenario']} | {len(r['failed'])} | {r['ecr_calls']} ({r['ecr_calls_per_task']}) | "
            f"{k8s.get('min')} / {k8s.get('median')} / {k8s.get('max')} | {r['secrets_left_after_pods_deleted']} | "
            f"{r['seconds']} |"
        )
    lines += ["", "Kubernetes API calls by method, all tasks of a scenario:", ""]
    for r in report["scenarios"]:
        methods = ", ".join(f"`{k}` {v}" for k, v in sorted(r["k8s_calls_by_method"].items()))
        lines.append(f"- {r['scenario']}: {methods}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    parser.add_argument("--lab", required=True, help="the lab directory (lab.json)")
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--out", default=str(HERE / "results" / "kubernetes.json"))
    args = parser.parse_args(argv)
    lab = json.loads((Path(args.lab) / "lab.json").read_text())
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    import airflow_ecr.kubernetes.attach  # noqa: F401 - imported once, before the forks (as a worker has)

    with tempfile.TemporaryDirectory(prefix="bench-k8s-") as tmp, control_plane(Path(tmp) / "cluster") as cluster:
        version = cluster.request("GET", "/version")["gitVersion"]
        scenarios = [run_scenario(s, cluster, lab, args.tasks, Path(tmp)) for s in SCENARIOS]
    report = {
        "measured": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores",
        "tasks": args.tasks,
        "kubernetes": version,
        "scenarios": scenarios,
    }
    out = Path(args.out)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(render(report))
    print(render(report))
    return 1 if any(r["failed"] or r["secrets_left_after_pods_deleted"] for r in scenarios) else 0


if __name__ == "__main__":
    sys.exit(main())
