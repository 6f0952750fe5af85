"""How the lab reports: one progress line per step on stdout, :class:`LabError` for what stops it."""

from __future__ import annotations


class LabError(RuntimeError):
    """The lab cannot start or stop; the message says why and what to do."""


def say(component: str, text: str) -> None:
    """Print one progress line, ``lab: <component> <text>``.

    :param component: what the line is about (``dockerd``, ``registry``, ...).
    :param text: what happened.
    """
    print(f"lab: {component:<9} {text}", flush=True)
