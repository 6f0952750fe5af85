"""API-shape compatibility: the token source against moto_server, whose tokens are born expired."""

from __future__ import annotations

import json

from airflow_ecr.registry import parse_registry_host
from airflow_ecr.tokens.cache import CacheSettings, TokenCache
from airflow_ecr.tokens.sources import EcrTokenSource


def test_token_source_reads_moto_answers_and_never_caches_its_expired_tokens(moto_url, monkeypatch, tmp_path):
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
    registry = parse_registry_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com")
    source = EcrTokenSource.from_connection("aws_moto")
    cache = TokenCache(CacheSettings(directory=tmp_path / "cache"))
    TokenCache.clear_memory()
    first = cache.get_one(source, registry)
    second = cache.get_one(source, registry)
    assert first.username == "AWS"
    assert first.password  # moto's fixed '<account>-auth-token'
    assert first.expires_at < first.issued_at  # 2015
    assert second.issued_at > first.issued_at  # fetched again: an expired token is never cached
    assert not list((tmp_path / "cache").glob("*.json"))
