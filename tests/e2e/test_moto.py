"""API-shape compatibility: the token source against moto_server, whose tokens are born expired."""

from __future__ import annotations

import json
import logging

import pytest

from airflow_ecr import doctor, process_state
from airflow_ecr.registry import parse_registry_host
from airflow_ecr.settings import EcrSettings
from airflow_ecr.tokens.cache import TokenCache
from airflow_ecr.tokens.sources import EcrTokenSource

IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1"


def moto_connection(monkeypatch: pytest.MonkeyPatch, moto_url: str) -> None:
    """An ``aws_moto`` Airflow connection to moto_server (environment variable)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_MOTO",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"region_name": "eu-west-1", "endpoint_url": moto_url},
            }
        ),
    )


def test_token_source_reads_moto_answers_and_never_caches_its_expired_tokens(moto_url, monkeypatch, tmp_path):
    moto_connection(monkeypatch, moto_url)
    registry = parse_registry_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com")
    source = EcrTokenSource.from_connection("aws_moto")
    cache = TokenCache(EcrSettings(cache_dir=tmp_path / "cache"))
    first = cache.get_one(source, registry)
    second = cache.get_one(source, registry)
    assert first.username == "AWS"
    assert first.password  # moto's fixed '<account>-auth-token'
    assert first.expires_at < first.issued_at  # 2015
    assert second.issued_at > first.issued_at  # fetched again: an expired token is never cached
    assert not list((tmp_path / "cache").glob("*.json"))


def test_doctor_and_the_task_read_motos_2015_expiry_alike(moto_url, monkeypatch, tmp_path, caplog):
    moto_connection(monkeypatch, moto_url)
    monkeypatch.setenv("AIRFLOW__ECR__CACHE_DIR", str(tmp_path / "cache"))
    caplog.set_level(logging.INFO, logger="airflow_ecr")
    state = doctor.DoctorState(image=IMAGE, aws_conn_id="aws_moto")
    permission = doctor.check_ecr_permission(state)
    # Not "ok ... (token valid for 0 s)": a warning, in the words of the task's own warning.
    assert permission.status == "warn", permission
    said = permission.summary.split(", but ", 1)[1].split(" (by ")[0]
    assert said.startswith("ECR returned a token that expires at 2015-") and said.endswith("this host's clock")
    process_state.reset()
    TokenCache(EcrSettings(cache_dir=tmp_path / "cache")).get_one(
        EcrTokenSource.from_connection("aws_moto"), parse_registry_host(IMAGE.split("/")[0])
    )
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said in warning, (said, warning)
    assert any("token from ECR (fetched now), valid until 2015-" in r.getMessage() for r in caplog.records)
