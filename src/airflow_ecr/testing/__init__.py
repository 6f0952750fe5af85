"""Test helpers for DAGs that use ECR images: an ECR API emulator and a local lab.

:class:`EcrEmulator` answers boto3's ``GetAuthorizationToken`` on a loopback port and can rotate
a real registry's password; :mod:`airflow_ecr.testing.lab` starts a Docker engine and registries
reachable by real ECR names (``python -m airflow_ecr.testing.lab up``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount, EmulatorClient, EmulatorError

__all__ = ["EcrEmulator", "EmulatedAccount", "EmulatorClient", "EmulatorError"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `python -m airflow_ecr.testing.emulator` does not import the module twice.
    if name in __all__:
        from airflow_ecr.testing import emulator

        return getattr(emulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
