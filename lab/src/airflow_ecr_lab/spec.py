"""What the lab is made of: its accounts, addresses, host names and images."""

from __future__ import annotations

from dataclasses import dataclass

ANONYMOUS_HOST = "registry.lab.test"
ANONYMOUS_ADDRESS = "198.18.0.19"
# The swarm manager (the lab's dockerd), on its namespace's loopback: reachable from the lab's workers
# only (veth links from its namespace), so no clash with the host or another lab.
SWARM_ADDRESS = "198.18.1.1"
# Where the registries' addresses live, as a worker routes to them (``restarts.cut_registries`` drops it).
REGISTRY_NETWORK = "198.18.0.0/24"
# The node label (``node.labels.<NODE_LABEL>==worker-1``) that lets a service be placed on one node.
NODE_LABEL = "airflow-ecr-lab.node"
BUSYBOX_IMAGE = "lab/busybox:1"
PYTHON_IMAGE = "lab/python:3.11"
# What each account registry holds: (local image, name in the registry).
ACCOUNT_IMAGES = ((BUSYBOX_IMAGE, "lab/busybox:1"), (BUSYBOX_IMAGE, "app/hello:1"))
PYTHON_ACCOUNT = "111111111111"
# An ECR pull-through cache rule for Docker Hub in the first account's registry: its prefix, and the
# official images the cache holds, as Docker Hub names them. Stand-ins: the lab cannot reach Docker
# Hub, so the lab's own busybox (Debian's busybox-static) and python stand in for Docker Hub's, seeded
# under the names ECR's first pull would import them as (``docker-hub/library/busybox:1.36``). An image
# not listed here is one whose first pull the cache cannot import: ECR's answer when the identity may
# not ecr:BatchImportUpstreamImage.
PULL_THROUGH_ACCOUNT = "111111111111"
PULL_THROUGH_PREFIX = "docker-hub"
PULL_THROUGH_UPSTREAM = "docker.io"
PULL_THROUGH_IMAGES = ((BUSYBOX_IMAGE, "busybox:1.36"), (PYTHON_IMAGE, "python:3.11"))


@dataclass(frozen=True)
class LabAccount:
    """One emulated ECR registry in the lab.

    :param account_id: the 12-digit account id.
    :param region: the region.
    :param address: the address its registry listens on (port 443, in the lab's network namespace).
    """

    account_id: str
    region: str
    address: str
    replica: bool = False

    @property
    def host(self) -> str:
        """The real ECR host name of this registry."""
        return f"{self.account_id}.dkr.ecr.{self.region}.amazonaws.com"

    @property
    def name(self) -> str:
        """The registry's name in the lab (its directory, its pid record): the account id, or
        ``<account>-<region>`` for a replica."""
        return f"{self.account_id}-{self.region}" if self.replica else self.account_id


LAB_ACCOUNTS = (
    LabAccount("111111111111", "eu-west-1", "198.18.0.11"),
    LabAccount("222222222222", "us-east-1", "198.18.0.12"),
)
# ECR replication: the first account's repositories, replicated to a second region (the same images,
# so the same digests), with that region's own ECR API tokens.
LAB_REPLICAS = (LabAccount("111111111111", "eu-central-1", "198.18.0.13", replica=True),)
LAB_REGISTRIES = (*LAB_ACCOUNTS, *LAB_REPLICAS)
LAB_HOSTS = {**{a.host: a.address for a in LAB_REGISTRIES}, ANONYMOUS_HOST: ANONYMOUS_ADDRESS}


@dataclass(frozen=True)
class LabNode:
    """One swarm worker of the lab (``up --swarm``): a Docker engine in namespaces of its own.

    :param name: its name: host name, node label value, directory, pid record (``node-<name>``).
    :param address: its address on its link to the manager's namespace.
    :param link: the link's device name in the manager's namespace.
    """

    name: str
    address: str
    link: str


LAB_WORKERS = (LabNode("worker-1", "198.18.1.11", "w1"), LabNode("worker-2", "198.18.1.12", "w2"))
