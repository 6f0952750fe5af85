"""Test helpers for DAGs that use ECR images: an ECR API emulator and :func:`running_task`.

:class:`EcrEmulator` answers boto3's ``GetAuthorizationToken`` on a loopback port and can rotate
a real registry's password (:mod:`airflow_ecr.testing.emulator`); :class:`EmulatorClient`
drives it from any process (:mod:`airflow_ecr.testing.emulator_admin`). The project's lab (a
Docker engine and registries reachable by real ECR names, and the leak scanner) is not part of this
package: it is ``airflow_ecr_lab``, in the repository's ``lab/`` directory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount, EmulatorError
    from airflow_ecr.testing.emulator_admin import EmulatorClient

__all__ = ["EcrEmulator", "EmulatedAccount", "EmulatorClient", "EmulatorError", "running_task"]


@contextlib.contextmanager
def running_task(context: dict[str, Any] | None = None) -> Iterator[None]:
    """
    Run the block as Airflow runs a task's ``execute``: inside its current-task context.

    The secrets backend answers only in a process running a task (never in the API server or
    the scheduler), so a test or benchmark that calls it directly wraps the call in this.

    :param context: the task context to set (a few keys are enough for the backend).
    """
    from airflow_ecr._compat import set_current_context

    with set_current_context(context or {"task_id": "test"}):
        yield


def __getattr__(name: str) -> Any:
    # Lazy: importing airflow_ecr.testing (for the lab, the leak scanner or the admin client alone)
    # does not import the emulator's server.
    if name == "EmulatorClient":
        from airflow_ecr.testing import emulator_admin

        return emulator_admin.EmulatorClient
    if name in __all__ and name != "running_task":
        from airflow_ecr.testing import emulator

        return getattr(emulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
