"""
What knowing which image ran costs a task (issue 14): registry requests and time, per new task process.

Each sample is one real ``EcrDockerOperator`` (or ``EcrPinImagesOperator``) task run through
``execute()`` in a task process forked from the benchmark's task-process parent (see ``measure.py``).
Inside it, the record step (``_record_image``: one daemon inspect, no registry call) and the resolve
step (``_pin``: the manifest ``HEAD``) are timed; the registry requests each task made are counted
from the registry's access log, split into the daemon's (its pull) and the task process's own (the
manifest API, through the lab's proxy). Scenarios, interleaved round by round:

- ``local``: the image is local, no resolving (recorded from the daemon's ``RepoDigests``);
- ``pull``: the image tag removed before the task (recorded from the pull's own ``Digest:`` line);
- ``local_resolved``: ``resolve_digest=True``, the image local (one ``HEAD``, then run by digest);
- ``pin_3_images``: one pin task for three distinct images (one ``HEAD`` each);
- ``policy_cold``: ``[ecr] image_policy`` with a scan rule and a Notation signature rule (issue 26),
  the host's verdict cache emptied first: one ``HEAD``, one ``DescribeImageScanFindings``, the
  signatures read through the tag schema and verified;
- ``policy_warm``: the same, with the verdict this host cached: the ``HEAD`` only.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from approaches import forget_process_memory, task_options
from lab_env import BenchEnv, expect, in_new_process, remove_image, rotated
from stats import summary

SCENARIOS = ("local", "pull", "local_resolved", "pin_3_images", "policy_cold", "policy_warm")
POLICY_SCENARIOS = ("policy_cold", "policy_warm")
SCAN_CALL = "DescribeImageScanFindings"
REQUESTS_AGENT = "python-requests"


def digests_spec(env: BenchEnv, plan: dict[str, Any]) -> dict[str, Any]:
    # Manifest requests reach the lab's registries through its proxy (only these task processes: the
    # credential helper must keep talking to its own forwarder directly).
    proxy = {"HTTPS_PROXY": str(env.lab["https_proxy"]), "REQUESTS_CA_BUNDLE": str(env.lab["ca_cert"])}
    return {"kind": "digests", "rounds": plan["digest_rounds"], "env": proxy}


class _TI:
    """``context["ti"]``: keeps the ``ecr_image`` XCom."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def _timed_steps() -> dict[str, float]:
    """Time the record and resolve steps of every ECR operator in this (task) process."""
    from airflow_ecr.hooks.docker import EcrDockerHook
    from airflow_ecr.operators.docker import EcrRegistryAuthMixin

    spent = {"record": 0.0, "resolve": 0.0, "check": 0.0}
    for owner, method, key in (
        (EcrRegistryAuthMixin, "_record_image", "record"),
        (EcrRegistryAuthMixin, "_pin", "resolve"),
        (EcrDockerHook, "check_image_policy", "check"),
    ):
        original = getattr(owner, method)

        def timed(self: Any, *args: Any, _original: Any = original, _key: str = key, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _original(self, *args, **kwargs)
            finally:
                spent[_key] += time.perf_counter() - start

        setattr(owner, method, timed)
    return spent


def _task(env: BenchEnv, scenario: str) -> dict[str, Any]:
    """One task in this (new) process: its times (ms) and its record."""
    from airflow_ecr.operators.docker import EcrDockerOperator
    from airflow_ecr.operators.images import EcrPinImagesOperator

    forget_process_memory()
    if scenario in POLICY_SCENARIOS:
        os.environ["AIRFLOW__ECR__IMAGE_POLICY"] = str(env.work / "image-policy.json")
        if scenario == "policy_cold":  # this host's verdicts forgotten: the check asks AWS and the registry
            shutil.rmtree(Path(os.environ["AIRFLOW__ECR__CACHE_DIR"]) / "verdicts", ignore_errors=True)
    spent = _timed_steps()
    ti = _TI()
    start = time.perf_counter()
    if scenario == "pin_3_images":
        pins = EcrPinImagesOperator(task_id="pin", images=env.pin_images, aws_conn_id="aws_ours").execute({"ti": ti})
        expect(len(pins) == 3, "ours", "pin task", f"pinned {sorted(pins)}")
    else:
        options = {**task_options("ours", env), "resolve_digest": scenario == "local_resolved"}
        output = EcrDockerOperator(image=env.image, aws_conn_id="aws_ours", **options).execute({"ti": ti})
        expect(output == "bench", "ours", f"{scenario} task", f"the task printed {output!r}")
        expect(bool(ti.xcom.get("ecr_image", {}).get("digest")), "ours", f"{scenario} task", "no digest recorded")
        if scenario in POLICY_SCENARIOS:
            policy = ti.xcom["ecr_image"].get("policy") or {}
            cached = scenario == "policy_warm"
            expect(policy.get("passed") and policy.get("cached") == cached, "ours", scenario, f"verdict {policy}")
    return {
        "task_ms": (time.perf_counter() - start) * 1000,
        "record_ms": spent["record"] * 1000,
        "resolve_ms": spent["resolve"] * 1000,
        "check_ms": spent["check"] * 1000,
    }


def sign_and_scan(env: BenchEnv) -> None:
    """The bench image signed (Notation, the lab's CA), scanned clean, and a policy requiring both."""
    from airflow_ecr.registry import ImageReference
    from airflow_ecr.trust.envelopes import JWS_MEDIA_TYPE
    from airflow_ecr_lab import emulator_client
    from airflow_ecr_lab.signing import LabRegistry, make_pki, notation_jws, notation_payload

    name = ImageReference.parse(env.image)
    registry = LabRegistry.of(Path(env.lab["dir"]), env.account["account_id"])
    digest = registry.descriptor(name.repository, name.tag or "latest")
    pki = make_pki(env.work / "notation")
    payload = notation_payload(digest["digest"], digest["size"], digest["mediaType"])
    registry.push_notation(name.repository, digest["digest"], notation_jws(pki.ca, payload), JWS_MEDIA_TYPE)
    emulator_client(env.lab).set_scan(name.repository, digest["digest"], "COMPLETE", findings=[])
    trust_policy = env.work / "notation" / "trustpolicy.json"
    statement = {"name": "bench", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
                 "trustStores": ["ca:lab"], "trustedIdentities": ["*"]}  # fmt: skip
    trust_policy.write_text(json.dumps({"version": "1.0", "trustPolicies": [statement]}))
    notation = {"trustPolicy": str(trust_policy), "trustStore": str(env.work / "notation" / "truststore")}
    rule = {"name": "bench", "scopes": ["*"], "scan": {"failAt": "HIGH"}, "signature": {"notation": notation}}
    (env.work / "image-policy.json").write_text(json.dumps({"version": "1", "rules": [rule]}))


def digests_run(env: BenchEnv, spec: dict[str, Any]) -> dict[str, Any]:
    """Every scenario, one new task process per sample, interleaved; requests counted around each."""
    from airflow_ecr_lab import emulator_client
    from airflow_ecr_lab.repository import registry_requests

    account = env.account["account_id"]
    samples: dict[str, list[dict[str, Any]]] = {s: [] for s in SCENARIOS}
    sign_and_scan(env)
    emulator = emulator_client(env.lab)

    def scan_calls() -> int:
        return sum(1 for call in emulator.calls() if str(call.get("target", "")).endswith(SCAN_CALL))

    def sample(scenario: str) -> dict[str, Any]:
        if scenario == "pull":
            remove_image(env, env.image)
        before, scans = len(registry_requests(Path(env.lab["dir"]), account)), scan_calls()
        got = in_new_process(lambda: _task(env, scenario))
        time.sleep(0.2)  # the registry logs right after answering
        made = registry_requests(Path(env.lab["dir"]), account)[before:]
        own = [r for r in made if REQUESTS_AGENT in r.user_agent]
        return {
            **got,
            "requests": len(made),
            "task_process_requests": len(own),
            "manifest_heads": sum(1 for r in own if r.method == "HEAD" and r.manifest),
            "blobs_by_task_process": sum(1 for r in own if r.blob),
            "scan_calls": scan_calls() - scans,
        }

    for scenario in SCENARIOS:  # warm-up: the host cache filled, the image local
        sample(scenario)
    for index in range(spec["rounds"]):
        for scenario in rotated(list(SCENARIOS), index):
            samples[scenario].append(sample(scenario))
    return {"kind": "digests", "samples": samples}


def digests_figures(result: dict[str, Any]) -> dict[str, Any]:
    """Per scenario: the time of the record and resolve steps and of the whole task, and the requests."""
    figures: dict[str, Any] = {}
    for scenario, samples in result["samples"].items():
        figures[scenario] = {
            "rounds": len(samples),
            "record_ms": summary([s["record_ms"] for s in samples]),
            "resolve_ms": summary([s["resolve_ms"] for s in samples]),
            "check_ms": summary([s["check_ms"] for s in samples]),
            "scan_calls_max": max(s["scan_calls"] for s in samples),
            "task_ms": summary([s["task_ms"] for s in samples]),
            # The most any sample made: a target holds for every task, not for the median one.
            "requests_max": max(s["requests"] for s in samples),
            "requests_min": min(s["requests"] for s in samples),
            "task_process_requests_max": max(s["task_process_requests"] for s in samples),
            "manifest_heads_max": max(s["manifest_heads"] for s in samples),
            "blobs_by_task_process": sum(s["blobs_by_task_process"] for s in samples),
        }
    return figures
