"""The conditions a study trains, in one registry: name, directory, labels, colour, and
whether a condition's weights feed the next round.

- `ticket`: round k trains m_k ⊙ θ_j and prunes its weights to m_{k+1} (round 0 is the
  dense network); it is the only condition that feeds a later round.
- `reinit`: the control that trains m_k from a fresh random init (Frankle & Carbin §2).
- `random`: the control that trains a random mask with m_k's per-layer densities from θ_j.

Every module that names a condition, draws one or labels one asks this registry, so a new
condition is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Condition:
    """One condition: how files, tables, figures and the engine know it."""

    name: str  # params, stage names (`reinit@r03`), metrics and MLflow tags
    directory: str  # artifacts/<directory>/…, metrics/<directory>/…
    label: str  # tables and report text ("reinit control")
    short: str  # gap names ("ticket − reinit")
    legend: str  # figure legends
    colour: str  # matplotlib colour
    feeds_next_round: bool  # its trained weights are pruned into the next round's mask

    @property
    def is_control(self) -> bool:
        return not self.feeds_next_round


TICKET = Condition(
    "ticket", "ticket", "ticket", "ticket", "winning ticket (original init)", "C0", True
)
REINIT = Condition(
    "reinit",
    "reinit",
    "reinit control",
    "reinit",
    "reinit control (same mask, fresh init)",
    "C1",
    False,
)
RANDOM = Condition(
    "random",
    "random",
    "random-prune control",
    "random prune",
    "random-prune control (same densities)",
    "C2",
    False,
)

#: By name, in the order conditions are drawn and tabulated.
REGISTRY: dict[str, Condition] = {c.name: c for c in (TICKET, REINIT, RANDOM)}
#: The names, in that order.
CONDITIONS: tuple[str, ...] = tuple(REGISTRY)
#: The controls' names (the conditions that feed nothing later).
CONTROLS: tuple[str, ...] = tuple(c.name for c in REGISTRY.values() if c.is_control)


def condition(name: str) -> Condition:
    """The condition called `name` (ValueError naming the known ones otherwise)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown condition {name!r}; known: {', '.join(CONDITIONS)}")
    return REGISTRY[name]


def label(name: str) -> str:
    """A condition's table label; an unknown name (an old study's) is its own label."""
    return REGISTRY[name].label if name in REGISTRY else name
