"""What a Docker daemon (or a registry through it) said, read by the one module that matches their text."""

from __future__ import annotations

import pytest

from airflow_ecr.hooks.daemon_messages import (
    classify_daemon_failure,
    names_missing_image,
    names_missing_repository,
    names_unknown_host,
    pull_stream_error,
)


@pytest.mark.parametrize(
    ("said", "missing_repository"),
    [
        ("name unknown: The repository with name 'app' does not exist in the registry", True),
        ("manifest unknown: Requested image not found", False),
    ],
)
def test_names_missing_repository(said: str, missing_repository: bool) -> None:
    assert names_missing_repository(said) is missing_repository


@pytest.mark.parametrize(
    ("said", "unknown"),
    [
        ("Get https://x.dkr.ecr.eu-west-1.amazonaws.com/v2/: dial tcp: lookup x.dkr.ecr: no such host", True),
        ("Get https://x/v2/: dial tcp 10.0.0.1:443: i/o timeout", False),
    ],
)
def test_names_unknown_host(said: str, unknown: bool) -> None:
    assert names_unknown_host(said) is unknown


def test_names_missing_image() -> None:
    assert names_missing_image("No such image: 111111111111.dkr.ecr.eu-west-1.amazonaws.com/app:1")
    assert not names_missing_image("task: non-zero exit (1)")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ("FileNotFoundError(2, 'No such file or directory')", "no_socket"),
        ("PermissionError(13, 'Permission denied')", "permission"),
        ("[Errno 111] Connection refused", "refused"),
        ("Read timed out. (read timeout=60)", "timeout"),
        ("something else", "other"),
    ],
)
def test_classify_daemon_failure(error: str, kind: str) -> None:
    assert classify_daemon_failure(error) == kind


def test_pull_stream_error() -> None:
    assert pull_stream_error({"status": "Pulling fs layer"}) is None
    assert pull_stream_error({"errorDetail": {"message": "denied: nope"}}) == "denied: nope"
    assert pull_stream_error({"error": "manifest unknown", "errorDetail": {"message": "x"}}) == "manifest unknown"
