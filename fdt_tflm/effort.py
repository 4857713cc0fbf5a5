"""How hard the optimiser tries, as counts of work rather than seconds.

Every search stops on one of these budgets, never on the wall clock, so the same input
gives the same bytes on any machine, at any load.  A level
1..5 scales all budgets roughly in proportion (level 2 is the default, level 4 does about
twice its work); the run time follows the budgets, not the other way round.
"""
from __future__ import annotations

from dataclasses import dataclass


LEVELS = range(1, 6)
DEFAULT_LEVEL = 2

# The default level's budgets, measured on the shared models, models/ and the tiling search's
# candidates (VWW and person detect at 30 % MACs, head objective).  The largest scheduling
# problem created 118k DP/beam states (1-4 s of the old clock limits; none reaches this budget,
# so none is cut that the clock did not cut); the local search's 2,000 moves are the old
# iteration count; CBC proves a 40-buffer plan optimal in 460 nodes and spends ~4 CPU s on
# 1,000 nodes of an 87-buffer one (the memory passes never reach the ILP on these models:
# the heuristics already meet the lower bound).  The search's 800 candidates cover every round
# of the head objective at 30 % MACs on VWW, person detect, ResNet-8 and MobileNetV2-224 up to
# its last lookahead, and radar's whole total-objective search; 100 planned candidates are
# what its lookahead needs.
SCHEDULE_STATES = 200_000
PLAN_MOVES = 2_000
ILP_NODES = 1_000
SEARCH_EVALUATIONS = 800
EXACT_EVALUATIONS = 100


@dataclass(frozen=True)
class Effort:
    """Work budgets (counts, never seconds).

    ``schedule_states``: DP/beam states one :func:`~fdt_tflm.memory.scheduler.best_order`
    call may create; past it every remaining layer keeps its best state (a greedy finish).
    ``plan_moves``: local-search moves of one offset plan.  ``ilp_nodes``: branch-and-bound
    nodes of one ILP solve (one solver thread).  ``search_evaluations``: candidate
    evaluations of the whole tiling search; ``exact_evaluations``: those of them that get
    the full reorder + plan."""

    level: int
    schedule_states: int
    plan_moves: int
    ilp_nodes: int
    search_evaluations: int
    exact_evaluations: int


def effort(level: int = DEFAULT_LEVEL) -> Effort:
    """The budgets of ``level`` (1..5): the default's times ``level / 2``."""
    if isinstance(level, bool) or not isinstance(level, int) or level not in LEVELS:
        raise ValueError(f"effort level must be an integer from {LEVELS[0]} to {LEVELS[-1]}, not {level!r}")

    def scaled(base: int) -> int:
        return max(1, base * level // DEFAULT_LEVEL)

    return Effort(level, scaled(SCHEDULE_STATES), scaled(PLAN_MOVES), scaled(ILP_NODES),
                  scaled(SEARCH_EVALUATIONS), scaled(EXACT_EVALUATIONS))


DEFAULT_EFFORT = effort()
