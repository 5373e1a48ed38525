"""The reconstruction constraint R <= tau and its Lagrange multiplier rule (docs/theory.rst)."""

import math
from dataclasses import dataclass

import torch

# Multiplier rule of docs/theory.rst.
LAMBDA_INIT = 1.0
LAMBDA_BOUNDS = (1e-3, 1e4)
LAMBDA_STEP = 0.05
MOVING_AVERAGE = 0.9


@dataclass(frozen=True)
class Constraint:
    """Keep the reconstruction loss R under ``target`` (tau); ``collapse`` is delta."""

    target: float
    collapse: float

    @property
    def width(self):
        return self.collapse - self.target


def _clip(x, lo, hi):
    """``x`` clipped to ``[lo, hi]``: a float, or a tensor that stays on its device."""
    return x.clamp(lo, hi) if torch.is_tensor(x) else min(max(x, lo), hi)


class Multiplier:
    """log-space Lagrange multiplier update with a normalised, clipped violation.

    With ``on_device`` the state is kept as 0-d tensors on the loss's device,
    so the per-step rule never waits for the device (a host sync per step on
    a GPU); otherwise it is plain floats, which on the CPU cost less than
    tensor arithmetic. The rule is the same code for both.
    """

    def __init__(self, constraint, on_device=False):
        self.constraint = constraint
        self.on_device = on_device
        self.log_value = math.log(LAMBDA_INIT)
        self.average = None

    @property
    def value(self):
        return math.exp(float(self.log_value)) if self.constraint else 0.0

    def penalty(self, R):
        """``lambda (R - tau) / (delta - tau)``, the term added to the loss."""
        c = self.constraint
        lam = self.log_value.exp() if torch.is_tensor(self.log_value) else math.exp(self.log_value)
        return (R - c.target) * (lam / c.width)

    def add_penalty(self, loss, R):
        """``loss`` plus the penalty, up to a constant: the same gradient, in one op on the host path.

        The constant ``-lambda tau / (delta - tau)`` has no gradient; on the
        host path ``lambda`` is a float and the whole term is one fused add.
        """
        if torch.is_tensor(self.log_value):
            return loss + self.penalty(R)
        return torch.add(loss, R, alpha=math.exp(self.log_value) / self.constraint.width)

    def update(self, R):
        r = R.detach() if self.on_device else float(R)
        self.average = r if self.average is None else (
            MOVING_AVERAGE * self.average + (1 - MOVING_AVERAGE) * r
        )
        c = self.constraint
        violation = _clip((self.average - c.target) / c.width, -1.0, 1.0)
        lo, hi = math.log(LAMBDA_BOUNDS[0]), math.log(LAMBDA_BOUNDS[1])
        self.log_value = _clip(self.log_value + LAMBDA_STEP * violation, lo, hi)

    @property
    def feasible(self):
        return self.constraint is None or float(self.average) <= self.constraint.target

    def state(self):
        """(log multiplier, moving average of R) as floats, to resume from."""
        average = None if self.average is None else float(self.average)
        return float(self.log_value), average
