"""Pure canary analysis: a measurement plus settings in, a verdict with reasons out. No I/O."""

from safeship.analysis.evaluate import Memory, evaluate
from safeship.analysis.threshold import histogram_quantile
from safeship.analysis.verdict import CheckResult, Result, Verdict, error_verdict

__all__ = [
    "CheckResult",
    "Memory",
    "Result",
    "Verdict",
    "error_verdict",
    "evaluate",
    "histogram_quantile",
]
