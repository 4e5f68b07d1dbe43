"""Hypothesis settings for the fuzz suite: bounded, reproducible, no timing on a noisy machine.

`make test` runs the `ci` profile (a fixed example budget and derandomized,
so a run is repeatable); HYPOTHESIS_PROFILE=deep explores much further.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
settings.register_profile("deep", max_examples=5000, deadline=None, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
