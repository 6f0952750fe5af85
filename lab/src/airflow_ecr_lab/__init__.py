"""The airflow-ecr test lab: a real Docker engine pulling from real registries by real ECR names.

``python -m airflow_ecr_lab up|down|status [--dir DIR] [--swarm] [--purge]`` (as root).
``python -m airflow_ecr_lab setup [--install]`` prints the ``apt-get`` line of the Debian
packages the lab needs (:data:`DEBIAN_PACKAGES`), or runs it (as root) with ``--install``.

Everything lives under DIR (default: ``$AIRFLOW_ECR_LAB_DIR``, else ``$XDG_RUNTIME_DIR/airflow-ecr-lab``,
else ``/run/airflow-ecr-lab`` for root), which must be the running user's own and writable by no
one else (:mod:`airflow_ecr_lab.paths`; created 0700):

- ``tls/``: a lab CA and one server certificate whose SANs cover every registry host name;
- the ECR API emulator (:mod:`airflow_ecr.testing.emulator`) on ``127.0.0.1:<ephemeral>``;
- ``dockerd`` in private network and mount namespaces (``unshare --net --mount``): its own
  loopback device carries the registry addresses (``198.18.0.11``, ``.12``, ``.19``: the RFC 2544
  benchmarking range), ``DIR/hosts`` is bound over ``/etc/hosts`` (the registry names) and
  ``DIR/etc-docker`` over ``/etc/docker`` (``certs.d/<host>/ca.crt``). Only the daemon sees the
  names, the addresses and the CA; nothing global changes and nothing is reachable from outside.
  Clients use ``unix://DIR/docker.sock``; containers need ``network_mode="none"`` (no bridge);
- one ``docker-registry serve`` per emulated account, inside the daemon's network namespace, on
  ``<its own address>:443`` with ECR-style basic auth (user ``AWS``, htpasswd rewritten by the
  emulator), plus one anonymous registry ``registry.lab.test``. Port 443 on a dedicated address is
  what lets image names be real ECR names without a port
  (``111111111111.dkr.ecr.eu-west-1.amazonaws.com/lab/busybox:1``);
- test images pushed to every registry (see :mod:`airflow_ecr_lab.images`), and the first
  account's registry holding Docker Hub official images as an ECR pull-through cache rule
  (``docker-hub``) would after their first pull (stand-ins: the lab's own images, see
  :data:`~airflow_ecr_lab.spec.PULL_THROUGH_IMAGES`); ``lab.json``'s ``pull_through_cache``
  gives the ``[ecr] pull_through_cache`` value that serves them;
- with ``--swarm``, a multi-node swarm (:mod:`~airflow_ecr_lab.swarm`): the lab's dockerd
  is the manager (on ``198.18.1.1:2377``, its namespace's loopback) and two worker engines,
  ``worker-1`` and ``worker-2``, run in network, mount and UTS namespaces of their own, with fresh
  data roots (neither the test images nor any login) and the same hosts file and CA bound over
  ``/etc/hosts`` and ``/etc/docker``. A veth pair links each worker's namespace to the manager's
  (``198.18.1.11``, ``.12``), with routes to the manager, to the registries and (through the
  manager's namespace) to each other only; nothing is added to the host's namespace. Each node
  carries the label ``airflow-ecr-lab.node=<name>`` (``node.labels.airflow-ecr-lab.node==worker-1``
  places a service there), and
  :func:`cut_registries` / :func:`restore_registries` take a worker's route to the registries away
  and give it back;
- ``lab.json``, which describes all of it to tests (``nodes``: each swarm node's name, role, node
  id, ``docker_host``, address and daemon log).

Why not 127.0.0.x in the host's namespace: dockerd always treats registries that resolve into
127.0.0.0/8 as insecure, so it would skip certificate verification and fall back to plain HTTP
(a pull without credentials then fails with ``dial tcp 127.0.0.11:80: connection refused`` instead
of ECR's ``no basic auth credentials``). Non-loopback addresses in a private namespace keep TLS
verification real, and let several labs run side by side.

Every process is started detached and recorded in ``DIR/pids.json`` as soon as it starts, so that
``down`` stops exactly those pids (checking that each still runs a command naming DIR) even after a
crash.

Modules, one job each: :mod:`~airflow_ecr_lab.spec` (accounts, addresses, host names,
images), :mod:`~airflow_ecr_lab.paths` (the directory, its layout, lock and JSON files),
:mod:`~airflow_ecr_lab.processes` (spawning, pid records, stopping),
:mod:`~airflow_ecr_lab.host` (root, tools, Debian packages, ``setup``),
:mod:`~airflow_ecr_lab.tls`, :mod:`~airflow_ecr_lab.netns` (probes from inside the
namespace), :mod:`~airflow_ecr_lab.emulator_process`, :mod:`~airflow_ecr_lab.dockerd`
(the daemon and its swarm), :mod:`~airflow_ecr_lab.swarm` (the workers),
:mod:`~airflow_ecr_lab.registries`,
:mod:`~airflow_ecr_lab.seed` (the test images), :mod:`~airflow_ecr_lab.health`
(``status``, ``is_up``, ``load``), :mod:`~airflow_ecr_lab.lifecycle` (``up``, ``down``),
:mod:`~airflow_ecr_lab.restarts` (fault injection) and :mod:`~airflow_ecr_lab.cli`.
Everything a caller needs is importable from this package.
"""

from __future__ import annotations

# `lab.os` is the os module, as when the lab was one module (tests patch `lab.os.geteuid`).
import os as os

from airflow_ecr_lab.cli import main
from airflow_ecr_lab.emulator_process import emulator_client
from airflow_ecr_lab.health import is_up, load, status
from airflow_ecr_lab.host import (
    DEBIAN_PACKAGES,
    HOST_TOOLS,
    SETUP_COMMAND,
    apt_command,
    missing_packages,
    setup,
)
from airflow_ecr_lab.host import preflight as _preflight  # noqa: F401 (see below)
from airflow_ecr_lab.lifecycle import down, up
from airflow_ecr_lab.messages import LabError
from airflow_ecr_lab.paths import DEFAULT_DIR, ENV_DIR, default_dir
from airflow_ecr_lab.paths import LabPaths as _Paths  # noqa: F401 (see below)
from airflow_ecr_lab.processes import STOP_TIMEOUT
from airflow_ecr_lab.restarts import (
    cut_registries,
    restart_dockerd,
    restore_registries,
    start_registry,
    stop_registry,
)
from airflow_ecr_lab.spec import (
    ACCOUNT_IMAGES,
    ANONYMOUS_ADDRESS,
    ANONYMOUS_HOST,
    BUSYBOX_IMAGE,
    LAB_ACCOUNTS,
    LAB_HOSTS,
    LAB_WORKERS,
    NODE_LABEL,
    PULL_THROUGH_IMAGES,
    PYTHON_ACCOUNT,
    PYTHON_IMAGE,
    SWARM_ADDRESS,
    LabAccount,
    LabNode,
)
from airflow_ecr_lab.tls import make_tls as _make_tls  # noqa: F401 (see below)

# `_Paths`, `_preflight` and `_make_tls`, the private names of the one-module lab, stay importable
# from here for the tests and benchmarks that use them; they are not part of the API.
__all__ = [
    "ACCOUNT_IMAGES",
    "ANONYMOUS_ADDRESS",
    "ANONYMOUS_HOST",
    "BUSYBOX_IMAGE",
    "DEBIAN_PACKAGES",
    "DEFAULT_DIR",
    "ENV_DIR",
    "HOST_TOOLS",
    "LAB_ACCOUNTS",
    "LAB_HOSTS",
    "LAB_WORKERS",
    "NODE_LABEL",
    "PULL_THROUGH_IMAGES",
    "PYTHON_ACCOUNT",
    "PYTHON_IMAGE",
    "SETUP_COMMAND",
    "STOP_TIMEOUT",
    "SWARM_ADDRESS",
    "LabAccount",
    "LabError",
    "LabNode",
    "apt_command",
    "cut_registries",
    "default_dir",
    "down",
    "emulator_client",
    "is_up",
    "load",
    "main",
    "missing_packages",
    "restart_dockerd",
    "restore_registries",
    "setup",
    "start_registry",
    "status",
    "stop_registry",
    "up",
]
