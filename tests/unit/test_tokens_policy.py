"""tokens/policy.py: the refresh policy, the one home of every number about a token's life."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_ecr.exceptions import EcrConfigurationError
from airflow_ecr.tokens.policy import ECR_TOKEN_LIFE, MAX_EXPIRY_MARGIN, RefreshPolicy, jitter_draw
from airflow_ecr.tokens.token import EcrToken

NOW = 1_000_000.0


def token(age: float, life: float = ECR_TOKEN_LIFE) -> EcrToken:
    return EcrToken("AWS", "pw", "https://x", NOW - age + life, NOW - age)


def test_defaults_refresh_at_half_life_and_store_tokens_for_six_hours() -> None:
    # With the default jitter a token is due between 5.4 h and 6 h (see the jitter tests below);
    # without it, at 6 h exactly.
    policy = RefreshPolicy()
    assert policy.refresh_interval == timedelta(hours=6)
    assert policy.stored_token_min_life == 6 * 3600
    assert not policy.needs_refresh(token(age=5.39 * 3600), NOW)
    assert policy.needs_refresh(token(age=6.01 * 3600), NOW)
    assert policy.needs_refresh(None, NOW)
    exact = RefreshPolicy(refresh_jitter=0)
    assert not exact.needs_refresh(token(age=5.99 * 3600), NOW)
    assert exact.needs_refresh(token(age=6.01 * 3600), NOW)


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
    assert RefreshPolicy().usable_for(token(0), NOW, 11 * 3600)
    assert not RefreshPolicy().usable_for(token(0), NOW, 12 * 3600)


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


# -- jitter: hosts whose tokens were fetched together do not all refresh in the same second --------
def fleet_tokens(hosts: int, within: float = 1.0) -> list[EcrToken]:
    """The tokens of ``hosts`` hosts that fetched within ``within`` seconds of each other (a cold start)."""
    return [EcrToken("AWS", "pw", "https://x", NOW + i * within / hosts + ECR_TOKEN_LIFE, NOW + i * within / hosts)
            for i in range(hosts)]  # fmt: skip


def test_jitter_is_bounded_earlier_only_and_the_same_for_every_holder_of_a_token() -> None:
    policy = RefreshPolicy()  # ratio 0.5, jitter 0.1: due between 5.4 h and 6 h after arrival
    for tok in fleet_tokens(2000):
        due = policy.refresh_at(tok) - tok.issued_at
        assert 0.9 * 6 * 3600 <= due <= 6 * 3600
        # Deterministic: another process (or host) holding the same token agrees on when it is due.
        same = EcrToken("AWS", "other", tok.proxy_endpoint, tok.expires_at, tok.issued_at)
        assert RefreshPolicy().refresh_at(same) == policy.refresh_at(tok)
        # Never later than refresh_ratio: a handed-out token still has (1 - ratio) of its life left
        # (less the expiry margin), as without jitter.
        left = policy.longest_life_cache_guarantees(tok) - MAX_EXPIRY_MARGIN
        assert policy.can_serve(tok, policy.refresh_at(tok) - 1, min_life=left)
    assert RefreshPolicy(refresh_jitter=0).refresh_at(tok) == tok.issued_at + 6 * 3600


def test_jitter_spreads_a_fleet_that_fetched_in_the_same_second() -> None:
    """2000 hosts fetched within one second: without jitter all are due in that second, with it over
    the last 36 minutes before 6 h, at most a few in any second (ECR refills 20 calls per second)."""
    tokens = fleet_tokens(2000)
    exact = {int(RefreshPolicy(refresh_jitter=0).refresh_at(t)) for t in tokens}
    assert len(exact) <= 2
    due = sorted(RefreshPolicy().refresh_at(t) for t in tokens)
    assert due[-1] - due[0] > 0.9 * 0.1 * 6 * 3600  # spread over (nearly) the whole window
    per_second: dict[int, int] = {}
    for moment in due:
        per_second[int(moment)] = per_second.get(int(moment), 0) + 1
    assert max(per_second.values()) <= 8, max(per_second.values())
    draws = [jitter_draw(t) for t in tokens]
    assert all(0 <= d < 1 for d in draws)
    assert 0.4 < sum(draws) / len(draws) < 0.6  # uniform-looking, not clustered


def test_jitter_scales_with_short_lives_and_the_ratio() -> None:
    short = token(age=0, life=10.0)
    for ratio in (0.001, 0.5, 1.0):
        due = RefreshPolicy(ratio).refresh_at(short) - short.issued_at
        assert 0.9 * ratio * 10 - 1e-9 <= due <= ratio * 10 + 1e-9


@pytest.mark.parametrize("jitter", [-0.1, 1, 1.5])
def test_a_jitter_out_of_range_is_refused(jitter: float) -> None:
    with pytest.raises(EcrConfigurationError, match=r"refresh_jitter must be in \[0, 1\)"):
        RefreshPolicy(refresh_jitter=jitter)


def test_the_jitter_comes_from_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__ECR__REFRESH_JITTER", "0.25")
    assert RefreshPolicy.from_airflow_config().refresh_jitter == 0.25
    monkeypatch.setenv("AIRFLOW__ECR__REFRESH_JITTER", "lots")
    with pytest.raises(EcrConfigurationError, match=r"\[ecr\] refresh_jitter must be a number, got 'lots'"):
        RefreshPolicy.from_airflow_config()
