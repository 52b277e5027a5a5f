"""Behaviour bars: the measured properties a zoo model must have for the chapters built on it."""

import math
import operator
from dataclasses import dataclass

_COMPARE = {">=": operator.ge, "<=": operator.le, "<": operator.lt, ">": operator.gt}
# How far a retrain's share of prompts may fall short of a bar, in standard errors (see Bar.n).
RETRAIN_STANDARD_ERRORS = 2


@dataclass(frozen=True)
class Bar:
    """One requirement on a measured metric, e.g. ``Bar("copy_loss_ratio", "<=", 0.1, ...)``."""

    metric: str
    op: str
    threshold: float
    description: str
    # For a metric that is a share of a fixed set of prompts: how many. A retrain, whose
    # floating-point sums differ on another CPU or library version, is held to the bar less
    # ``standard_errors`` standard errors of such a share (see ``met``).
    n: int = 0

    def met(self, metrics: dict, standard_errors: float = 0.0) -> bool:
        """Whether ``metrics`` meets the bar; with ``standard_errors``, a share measured on
        ``n`` prompts may fall short of the threshold by that many standard errors."""
        value = metrics.get(self.metric)
        threshold = self.threshold
        if standard_errors and self.n:
            slack = standard_errors * math.sqrt(threshold * (1 - threshold) / self.n)
            threshold += -slack if self.op in (">=", ">") else slack
        return value is not None and value == value and _COMPARE[self.op](value, threshold)

    def __str__(self):
        return f"{self.metric} {self.op} {self.threshold:g}"


def unmet(bars, metrics: dict, standard_errors: float = 0.0) -> list[Bar]:
    """The bars that ``metrics`` does not meet (a missing or NaN metric never meets its bar)."""
    return [bar for bar in bars if not bar.met(metrics, standard_errors)]
