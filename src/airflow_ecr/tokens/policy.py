"""
The refresh policy: when a cached token is refreshed, handed out, or good enough to store.

Every number about a token's life lives here, and every module asks :class:`RefreshPolicy`: the
token cache (refresh, its jitter, and the expiry margin), the stored-connection operator and its DAG factory
(how long a written token must last, and how often to rewrite it), the secrets backend (how long
a handed-out token must last under Airflow's secrets cache, and the advice when it cannot).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from airflow_ecr.settings import (
    DEFAULT_REFRESH_JITTER,
    DEFAULT_REFRESH_RATIO,
    EcrSettings,
    check_refresh_jitter,
    check_refresh_ratio,
    ecr_settings,
)
from airflow_ecr.tokens.token import EcrToken, utc_time

# What ECR hands out: tokens that live 12 hours.
ECR_TOKEN_LIFE = 12 * 3600.0
# A token this close to expiresAt is not handed out: the pull that follows must still succeed.
MAX_EXPIRY_MARGIN = 60.0
EXPIRY_MARGIN_FRACTION = 0.1


def jitter_draw(token: EcrToken) -> float:
    """
    A number in [0, 1) that is the same for everyone who holds ``token`` and independent between tokens.

    Drawn from when the token arrived and when it expires: every process of a host (and every host
    sharing one cache file) reads the same token and so agrees on when it is due, while hosts that
    fetched together still differ (each received its token at its own microsecond, by its own
    clock). No randomness, no state, nothing secret (the password is not used).

    :param token: the cached token.
    """
    digest = hashlib.blake2b(f"{token.issued_at!r}|{token.expires_at!r}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


@dataclass(frozen=True)
class RefreshPolicy:
    """
    Decisions about a token's life, for one refresh ratio.

    A token is refreshed once ``refresh_ratio`` of its life has passed, or up to ``refresh_jitter``
    of that age earlier (:meth:`refresh_at`): hosts whose tokens were fetched together (a fleet's
    cold start) then refresh spread over that window instead of in the same second, against ECR's
    per-account rate limit. Only earlier, never later: a token handed out still has at least
    ``1 - refresh_ratio`` of its life left (what the secrets backend and the stored connections
    rely on).

    :param refresh_ratio: fraction of a token's life after which it is refreshed (``[ecr] refresh_ratio``).
    :param refresh_jitter: fraction of that age by which a token may be refreshed early
        (``[ecr] refresh_jitter``; 0: exactly at ``refresh_ratio``).
    """

    refresh_ratio: float = DEFAULT_REFRESH_RATIO
    refresh_jitter: float = DEFAULT_REFRESH_JITTER

    def __post_init__(self) -> None:
        check_refresh_ratio(self.refresh_ratio)
        check_refresh_jitter(self.refresh_jitter)

    @classmethod
    def of(cls, settings: EcrSettings) -> RefreshPolicy:
        """The policy of ``settings`` (its ``refresh_ratio`` and ``refresh_jitter``)."""
        return cls(settings.refresh_ratio, settings.refresh_jitter)

    @classmethod
    def from_airflow_config(cls) -> RefreshPolicy:
        """The policy of ``[ecr] refresh_ratio`` and ``refresh_jitter`` (read once per process)."""
        return cls.of(ecr_settings())

    def refresh_at(self, token: EcrToken) -> float:
        """
        When ``token`` is due for refresh (epoch seconds): after ``refresh_ratio`` of its life, less a
        jitter drawn once per token (:func:`jitter_draw`), at most ``refresh_jitter`` of that age.
        For ECR's 12 h tokens and the defaults: between 5 h 24 min and 6 h after it arrived.

        :param token: the cached token.
        """
        early = self.refresh_jitter * jitter_draw(token) if self.refresh_jitter else 0.0
        return token.issued_at + self.refresh_ratio * token.lifetime * (1 - early)

    @staticmethod
    def expiry_margin(token: EcrToken) -> float:
        """Seconds before ``expires_at`` from which ``token`` is no longer handed out."""
        return min(MAX_EXPIRY_MARGIN, token.lifetime * EXPIRY_MARGIN_FRACTION)

    def usable_life(self, token: EcrToken, now: float) -> float:
        """Seconds ``token`` may still be handed out from ``now`` (negative: no longer)."""
        return token.expires_at - self.expiry_margin(token) - now

    def is_usable(self, token: EcrToken, now: float) -> bool:
        """Whether ``token`` can still be handed out for a pull starting ``now``."""
        return self.usable_life(token, now) > 0

    def needs_refresh(self, token: EcrToken | None, now: float, min_life: float = 0.0) -> bool:
        """
        Whether a new token should be fetched instead of handing out ``token``.

        :param token: the best cached token, or None.
        :param now: the time of the lookup.
        :param min_life: seconds the token must still be usable for (stored or cached elsewhere).
        """
        if token is None:
            return True
        return not (now < self.refresh_at(token) and self.can_serve(token, now, min_life))

    def can_serve(self, token: EcrToken | None, now: float, min_life: float = 0.0) -> bool:
        """
        Whether ``token`` may still be handed out (it may be due for refresh): usable from ``now``
        for at least ``min_life`` seconds.

        :param token: the best cached token, or None.
        :param now: the time of the lookup.
        :param min_life: seconds the token must still be usable for (stored or cached elsewhere).
        """
        return token is not None and self.is_usable(token, now) and self.usable_life(token, now) >= min_life

    @property
    def refresh_interval(self) -> timedelta:
        """How often stored connections are rewritten: when an ECR token reaches ``refresh_ratio`` of its life."""
        return timedelta(seconds=self.refresh_ratio * ECR_TOKEN_LIFE)

    @property
    def stored_token_min_life(self) -> float:
        """Seconds a token written into a connection must still live: until the next rewrite."""
        return self.refresh_interval.total_seconds()

    @staticmethod
    def secrets_required_life(min_token_life: float, secrets_cache_ttl: float | None) -> float:
        """
        Seconds a token handed out by the secrets backend must stay valid after the lookup.

        :param min_token_life: the backend's own ``min_token_life``.
        :param secrets_cache_ttl: Airflow's ``[secrets] cache_ttl_seconds`` when its cache is on.
        """
        return min_token_life + (secrets_cache_ttl or 0.0)

    def usable_for(self, token: EcrToken, now: float, required_life: float) -> bool:
        """Whether ``token`` stays usable ``required_life`` seconds past ``now``."""
        return self.usable_life(token, now) >= required_life

    def longest_life_cache_guarantees(self, token: EcrToken) -> float:
        """The longest required life that cached tokens always meet (no extra ECR call)."""
        return (1 - self.refresh_ratio) * token.lifetime

    def too_short_advice(self, token: EcrToken, secrets_cache_ttl: float | None, min_token_life: float) -> str:
        """
        What to change when ``token`` cannot live as long as the secrets backend must promise.

        :param token: a freshly fetched token.
        :param secrets_cache_ttl: Airflow's ``[secrets] cache_ttl_seconds`` when its cache is on.
        :param min_token_life: the backend's ``min_token_life``.
        """
        bound = self.longest_life_cache_guarantees(token)
        if secrets_cache_ttl:
            extra = " + min_token_life" if min_token_life else ""
            return f"keep [secrets] cache_ttl_seconds{extra} below {bound:.0f} s, or turn [secrets] use_cache off"
        return f"keep min_token_life below {bound:.0f} s"


# What to do about a token that arrives expired (:func:`expired_on_arrival`), for the task's warning and doctor.
CLOCK_ADVICE = (
    "Check the host clock (run NTP: chrony, systemd-timesyncd); against an ECR emulation whose tokens carry a "
    "past expiry (moto's are from 2015) there is nothing to fix."
)


def expired_on_arrival(token: EcrToken, now: float | None = None) -> str | None:
    """
    Why a token just received from ECR cannot be handed out (it is no longer usable, see
    :meth:`RefreshPolicy.is_usable`), in the words the task's warning and doctor both use; None
    for a token that can. Such a token means this host's clock runs ahead of AWS's (or an
    emulation's tokens carry a past expiry): the task uses it once without caching it, and doctor
    warns instead of reporting a valid token.

    :param token: the token, as received.
    :param now: the time of the check (default: when the token was received).
    """
    now = token.issued_at if now is None else now
    if RefreshPolicy().is_usable(token, now):
        return None
    when = utc_time(token.expires_at)
    if now < token.expires_at:
        return f"ECR returned a token that expires at {when}, in {token.expires_at - now:.0f} s by this host's clock"
    late = now - token.expires_at
    return f"ECR returned a token that expires at {when}, already past by this host's clock (by {late:.0f} s)"
