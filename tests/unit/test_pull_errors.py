"""How daemon pull errors are read: the texts are those the real daemon and registry produce."""

from __future__ import annotations

import pytest

from airflow_ecr.hooks.docker import classify_pull_error

H = "111111111111.dkr.ecr.eu-west-1.amazonaws.com"


@pytest.mark.parametrize(
    ("image", "message", "kind"),
    [
        (f"{H}/app:1", f'Head "https://{H}/v2/app/manifests/1": no basic auth credentials', "auth"),
        (f"{H}/app:1", "unauthorized: authentication required", "auth"),
        (f"{H}/app:1", "denied: Your authorization token has expired. Reauthenticate and try again.", "auth"),
        (f"{H}/app:1", f"login attempt to https://{H}/v2/ failed with status: 401 Unauthorized", "auth"),
        (f"{H}/app:1", f"manifest for {H}/app:1 not found: manifest unknown: manifest unknown", "not_found"),
        # The image's own name must not decide: a tag or repository that reads like an auth error.
        (f"{H}/app:v401", f"manifest for {H}/app:v401 not found: manifest unknown", "not_found"),
        (f"{H}/unauthorized:1", f"manifest for {H}/unauthorized:1 not found: manifest unknown", "not_found"),
        (f"{H}/app:1", "Get https://x/v2/: net/http: TLS handshake timeout", "other"),
    ],
)
def test_classify_pull_error(image, message, kind):
    assert classify_pull_error(message, image) == kind
