"""DORA's four keys: what counts, and the performance tier each value falls in.

Tiers follow the 2021 Accelerate State of DevOps report. Its published ranges leave
gaps (e.g. lead time: elite < 1 hour, high 1 day-1 week, medium 1-6 months); a value
in a gap gets the better neighbouring tier, so every value has exactly one tier.
A month is 30 days, six months 180.

| key | elite | high | medium | low |
|---|---|---|---|---|
| deployment frequency | > 1 per day | >= 1 per 30 days | >= 1 per 180 days | less |
| lead time for changes (median) | < 1 h | <= 7 days | <= 180 days | longer |
| time to restore (median) | < 1 h | < 1 day | <= 180 days | longer |
| change failure rate | <= 15% | <= 30% | (not distinguished) | > 30% |

DORA 2021 gives high, medium and low the same change-failure range (16-30%), so a
rate there is "high" and only a rate above 30% (outside every range) is "low".
"""

from __future__ import annotations

from enum import StrEnum

from safeship.report.period import DAY

HOUR = 3600.0
MONTH = 30 * DAY
SIX_MONTHS = 180 * DAY


class Tier(StrEnum):
    ELITE = "elite"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


def frequency_tier(per_day: float) -> Tier:
    """Production promotions per day -> tier (elite is "on demand, several per day")."""
    if per_day > 1:
        return Tier.ELITE
    if per_day >= DAY / MONTH:
        return Tier.HIGH
    if per_day >= DAY / SIX_MONTHS:
        return Tier.MEDIUM
    return Tier.LOW


def lead_time_tier(median_seconds: float) -> Tier:
    if median_seconds < HOUR:
        return Tier.ELITE
    if median_seconds <= 7 * DAY:
        return Tier.HIGH
    if median_seconds <= SIX_MONTHS:
        return Tier.MEDIUM
    return Tier.LOW


def restore_tier(median_seconds: float) -> Tier:
    if median_seconds < HOUR:
        return Tier.ELITE
    if median_seconds < DAY:
        return Tier.HIGH
    if median_seconds <= SIX_MONTHS:
        return Tier.MEDIUM
    return Tier.LOW


def change_failure_tier(rate: float) -> Tier:
    if rate <= 0.15:
        return Tier.ELITE
    if rate <= 0.30:
        return Tier.HIGH
    return Tier.LOW
