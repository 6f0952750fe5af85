"""tokens/policy.py: the refresh policy, the one home of every number about a token's life."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_ecr.exceptions import EcrConfigurationError
from airflow_ecr.tokens.policy import ECR_TOKEN_LIFE, MAX_EXPIRY_MARGIN, RefreshPolicy
from airflow_ecr.tokens.token import EcrToken

NOW = 1_000_000.0


def token(age: float, life: float = ECR_TOKEN_LIFE) -> EcrToken:
    return EcrToken("AWS", "pw", "https://x", NOW - age + life, NOW - age)


def test_defaults_refresh_at_half_life_and_store_tokens_for_six_hours() -> None:
    policy = RefreshPolicy()
    assert policy.refresh_interval == timedelta(hours=6)
    assert policy.stored_token_min_life == 6 * 3600
    assert not policy.needs_refresh(token(age=5.9 * 3600), NOW)
    assert policy.needs_refresh(token(age=6.1 * 3600), NOW)
    assert policy.needs_refresh(None, NOW)


def test_the_expiry_margin_is_a_tenth_of_the_life_at_most_a_minute() -> None:
    policy = RefreshPolicy()
    assert policy.expiry_margin(token(0)) == MAX_EXPIRY_MARGIN
    assert policy.expiry_margin(token(0, life=100)) == pytest.approx(10)
    assert policy.is_usable(token(age=95, life=100), NOW - 6)
    assert not policy.is_usable(token(age=95, life=100), NOW)


def test_min_life_makes_a_fresh_token_due() -> None:
    policy = RefreshPolicy()
    young = token(age=3600)
    assert not policy.needs_refresh(young, NOW, min_life=6 * 3600)
    assert policy.needs_refresh(young, NOW, min_life=11 * 3600)


def test_the_stored_life_and_schedule_follow_the_ratio() -> None:
    policy = RefreshPolicy(0.25)
    assert policy.refresh_interval == timedelta(hours=3)
    assert policy.stored_token_min_life == 3 * 3600


def test_the_secrets_advice_follows_the_ratio() -> None:
    """The advice names the life a cached token always has left: (1 - ratio) of it, not a fixed half."""
    assert "below 10800 s" in RefreshPolicy(0.75).too_short_advice(token(0), 900, 0)
    assert "below 21600 s" in RefreshPolicy().too_short_advice(token(0), None, 30000)
    assert "min_token_life below" in RefreshPolicy().too_short_advice(token(0), None, 30000)


def test_secrets_required_life_adds_airflows_cache_ttl() -> None:
    assert RefreshPolicy.secrets_required_life(60, 900) == 960
    assert RefreshPolicy.secrets_required_life(60, None) == 60
    assert RefreshPolicy().lasts(token(0), NOW, 11 * 3600)
    assert not RefreshPolicy().lasts(token(0), NOW, 12 * 3600)


@pytest.mark.parametrize("ratio", [0, 1.5, -1])
def test_a_ratio_out_of_range_is_refused(ratio: float) -> None:
    with pytest.raises(EcrConfigurationError, match="refresh_ratio must be in"):
        RefreshPolicy(ratio)


def test_the_config_is_read_once_per_process_until_an_override_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_ecr import _compat, settings

    monkeypatch.setenv("AIRFLOW__ECR__REFRESH_RATIO", "0.4")
    assert RefreshPolicy.from_airflow_config().refresh_ratio == 0.4
    reads = []
    monkeypatch.setattr(_compat.conf, "getfloat", lambda *a, **k: reads.append(a) or 0.9)
    assert RefreshPolicy.from_airflow_config().refresh_ratio == 0.4 and reads == []
    monkeypatch.setenv("AIRFLOW__ECR__LOCK_TIMEOUT", "5")
    assert settings.ecr_settings().refresh_ratio == 0.9 and reads
