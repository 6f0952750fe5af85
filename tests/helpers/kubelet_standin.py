"""
A STAND-IN for the kubelet (not a kubelet): the part of a node that a pull secret is for, on top of
the real API server of :mod:`helpers.kube` and the lab's real Docker engine.

For each new pod of its namespace it does what a kubelet does for a pull: reads the pod's
``imagePullSecrets`` through the API (so an ECR image pulls only if its Secret is there and holds a
token the registry accepts), pulls every image through the lab's engine with exactly those
credentials (the image is removed first, so the registry is asked every time), runs the containers
(no network), and writes the pod's status as the kubelet would: ``Running``, then ``Succeeded`` or
``Failed`` with each container's exit code and ``imageID``; or ``Pending`` with ``ErrImagePull``.
It does not schedule, serve logs or exec: tasks run with ``get_logs=False`` and without XCom sidecars.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import docker
import requests

from helpers.kube import Cluster


@dataclass
class Pull:
    """One pull the stand-in made: which pod, which image, with which pull secret (None: anonymous)."""

    pod: str
    image: str
    secret: str | None
    ok: bool
    error: str = ""


@dataclass
class KubeletStandIn:
    """
    :param cluster: the control plane.
    :param namespace: the namespace whose pods it runs.
    :param docker_host: the lab engine's URL.
    """

    cluster: Cluster
    namespace: str
    docker_host: str
    pulls: list[Pull] = field(default_factory=list)
    handled: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)  # each pod as the stand-in first read it
    _init_names: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        client = docker.APIClient(base_url=self.docker_host)
        while not self._stop.wait(0.2):
            try:
                pods = self.cluster.request("GET", f"/api/v1/namespaces/{self.namespace}/pods")["items"]
                for pod in pods:
                    uid = pod["metadata"]["uid"]
                    if uid not in self.handled and not pod["metadata"].get("deletionTimestamp"):
                        self.handled.add(uid)
                        self.pods.append(pod)
                        self._start(client, pod)
            except Exception as err:
                self.errors.append(repr(err))

    def _auths(self, pod: dict[str, Any]) -> dict[str, tuple[str, dict[str, str]]]:
        """registry host -> (secret name, auth) from the pod's pull secrets, read as the kubelet reads them."""
        found: dict[str, tuple[str, dict[str, str]]] = {}
        for ref in pod["spec"].get("imagePullSecrets") or []:
            path = f"/api/v1/namespaces/{self.namespace}/secrets/{ref['name']}"
            try:
                secret = self.cluster.request("GET", path)
            except requests.HTTPError:
                continue  # a kubelet pulls anonymously when a named Secret is missing
            config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
            for host, entry in config.get("auths", {}).items():
                username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                found[host] = (ref["name"], {"username": username, "password": password})
        return found

    def _start(self, client: docker.APIClient, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        auths = self._auths(pod)
        init = pod["spec"].get("initContainers") or []
        self._init_names[name] = tuple(c["name"] for c in init)
        containers = [*init, *pod["spec"]["containers"]]
        image_ids: dict[str, str] = {}
        for container in containers:
            image = container["image"]
            host = image.split("/", 1)[0]
            secret, auth = auths.get(host, (None, None))
            with contextlib.suppress(docker.errors.NotFound):
                client.remove_image(image, force=True)
            try:
                repository, _, tag = image.rpartition(":") if "@" not in image else (image, "", "")
                client.pull(repository, tag or None, auth_config=auth)
                image_ids[container["name"]] = self._image_id(client, image)
                self.pulls.append(Pull(name, image, secret, True))
            except docker.errors.APIError as err:
                self.pulls.append(Pull(name, image, secret, False, str(err.explanation or err)))
                waiting = {"waiting": {"reason": "ErrImagePull", "message": str(err.explanation or err)}}
                self._status(name, "Pending", [self._container_status(c, waiting) for c in containers])
                return
        running = {"running": {"startedAt": _now()}}
        self._status(name, "Running", [self._container_status(c, running, image_ids[c["name"]]) for c in containers])
        exit_codes = {c["name"]: self._run(client, c) for c in containers}
        phase = "Succeeded" if not any(exit_codes.values()) else "Failed"
        self._status(name, phase, [self._finished(c, exit_codes[c["name"]], image_ids[c["name"]]) for c in containers])

    @staticmethod
    def _image_id(client: docker.APIClient, image: str) -> str:
        repository = image.split("@")[0].rsplit(":", 1)[0] if "/" in image else image
        for digest in client.inspect_image(image).get("RepoDigests") or []:
            if digest.startswith(repository + "@"):
                return f"docker-pullable://{digest}"
        return ""

    @staticmethod
    def _run(client: docker.APIClient, container: dict[str, Any]) -> int:
        created = client.create_container(
            container["image"],
            command=container.get("args"),
            entrypoint=container.get("command"),
            host_config=client.create_host_config(network_mode="none"),
        )
        try:
            client.start(created["Id"])
            return int(client.wait(created["Id"], timeout=120)["StatusCode"])
        finally:
            client.remove_container(created["Id"], force=True)

    def _finished(self, container: dict[str, Any], exit_code: int, image_id: str) -> dict[str, Any]:
        reason = "Completed" if exit_code == 0 else "Error"
        state = {"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": _now(), "finishedAt": _now()}}
        return self._container_status(container, state, image_id)

    @staticmethod
    def _container_status(container: dict[str, Any], state: dict[str, Any], image_id: str = "") -> dict[str, Any]:
        return {
            "name": container["name"],
            "image": container["image"],
            "imageID": image_id,
            "ready": "running" in state,
            "restartCount": 0,
            "started": "running" in state,
            "state": state,
        }

    def _status(self, pod: str, phase: str, statuses: list[dict[str, Any]]) -> None:
        # Init containers' statuses apart, as the kubelet reports them (the stand-in runs them first).
        init = [s for s in statuses if s["name"] in self._init_names.get(pod, ())]
        main = [s for s in statuses if s not in init]
        body = {
            "status": {"phase": phase, "containerStatuses": main, "initContainerStatuses": init, "startTime": _now()}
        }
        self.cluster.request("PATCH", f"/api/v1/namespaces/{self.namespace}/pods/{pod}/status", body)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextlib.contextmanager
def kubelet_standin(cluster: Cluster, namespace: str, docker_host: str) -> Iterator[KubeletStandIn]:
    """The stand-in, running in a thread until the block ends."""
    standin = KubeletStandIn(cluster, namespace, docker_host)
    thread = threading.Thread(target=standin.run, name=f"kubelet-standin-{namespace}", daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        standin._stop.set()
        thread.join(30)
