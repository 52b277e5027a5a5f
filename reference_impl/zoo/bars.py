"""Behaviour bars: the measured properties a zoo model must have for the chapters built on it."""

import operator
from dataclasses import dataclass

_COMPARE = {">=": operator.ge, "<=": operator.le, "<": operator.lt, ">": operator.gt}


@dataclass(frozen=True)
class Bar:
    """One requirement on a measured metric, e.g. ``Bar("copy_loss_ratio", "<=", 0.1, ...)``."""

    metric: str
    op: str
    threshold: float
    description: str

    def met(self, metrics: dict) -> bool:
        value = metrics.get(self.metric)
        return value is not None and value == value and _COMPARE[self.op](value, self.threshold)

    def __str__(self):
        return f"{self.metric} {self.op} {self.threshold:g}"


def unmet(bars, metrics: dict) -> list[Bar]:
    """The bars that ``metrics`` does not meet (a missing or NaN metric never meets its bar)."""
    return [bar for bar in bars if not bar.met(metrics)]
