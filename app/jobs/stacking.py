"""How the jobs that stack a recording's sweeps (``fuse``, ``stack``) settle planes and span, and say once when
the sweep cannot give the planes asked for."""

from __future__ import annotations

from collections.abc import Callable

from capture.plan import SweepPlan

#: Planes per stack when neither the command line nor the recording's plan says.
DEFAULT_PLANES = 16


def stack_choice(plan: SweepPlan | None, planes: int | None, span: str | None) -> tuple[int, str]:
    """(most planes, span): the command line's, else the recording's plan's, else the defaults."""
    n = planes if planes is not None else (plan.n_planes if plan is not None else DEFAULT_PLANES)
    return max(2, n), span if span is not None else (plan.stack_span if plan is not None else "period")


class ShortfallNote:
    """Says once per command that stacks came out with fewer planes than asked, and what would give them."""

    def __init__(self, plan: SweepPlan | None, asked: int, span: str, say: Callable[[str], None]) -> None:
        self.plan = None if plan is None else plan.model_copy(update={"stack_span": span})
        self.asked = asked
        self.say = say
        self.said = False

    def check(self, planes: int, sweep_index: int) -> None:
        if self.said or planes >= self.asked:
            return
        self.said = True
        advice = self.plan.plane_shortfall(self.asked) if self.plan is not None else None
        self.say(advice or f"sweep {sweep_index} gives {planes} usable frames, so its stack has {planes} planes, not "
                           f"{self.asked} (frames dropped, or a plan that does not cover them)")
