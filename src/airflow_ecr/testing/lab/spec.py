"""What the lab is made of: its accounts, addresses, host names and images."""

from __future__ import annotations

from dataclasses import dataclass

ANONYMOUS_HOST = "registry.lab.test"
ANONYMOUS_ADDRESS = "198.18.0.19"
# Inside the lab's network namespace: its own loopback, so no clash with the host or another lab.
SWARM_ADDRESS = "127.0.0.1"
BUSYBOX_IMAGE = "lab/busybox:1"
PYTHON_IMAGE = "lab/python:3.11"
# What each account registry holds: (local image, name in the registry).
ACCOUNT_IMAGES = ((BUSYBOX_IMAGE, "lab/busybox:1"), (BUSYBOX_IMAGE, "app/hello:1"))
PYTHON_ACCOUNT = "111111111111"


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

    @property
    def host(self) -> str:
        """The real ECR host name of this registry."""
        return f"{self.account_id}.dkr.ecr.{self.region}.amazonaws.com"


LAB_ACCOUNTS = (
    LabAccount("111111111111", "eu-west-1", "198.18.0.11"),
    LabAccount("222222222222", "us-east-1", "198.18.0.12"),
)
LAB_HOSTS = {**{a.host: a.address for a in LAB_ACCOUNTS}, ANONYMOUS_HOST: ANONYMOUS_ADDRESS}
