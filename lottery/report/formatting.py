"""How the report and the comparison write numbers: percentages, accuracies, iterations,
signed differences with their 95% interval, p-values and the verdicts read from them.

Accuracies are fractions in the metrics files and percentages (2 decimals) here; accuracy
differences are in percentage points (pp). A verdict is read from the interval as printed,
so that no sentence calls a difference real whose printed interval touches 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from lottery.analysis.inference import Cell, ControlGap, gap_sign
from lottery.analysis.results import Difference


def fmt_percent_remaining(value: float) -> str:
    """100.0, 51.2, 3.6, then 2 significant digits below 1% (0.59)."""
    return f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def fmt_accuracy(fraction: float) -> str:
    """A fraction as a percentage with 2 decimals, without the sign: '98.40'."""
    return f"{100.0 * fraction:.2f}"


def fmt_iteration(value: float) -> str:
    """An iteration (or a mean of iterations), whole: '9633'."""
    return f"{value:.0f}"


def signed(value: float, decimals: int = 2) -> str:
    """'+0.20', '-1.35', never '-0.00'."""
    return f"{round(value, decimals) + 0.0:+.{decimals}f}"


def pct(fraction: float) -> str:
    """A fraction as a percentage with its sign: '98.40%'."""
    return f"{100.0 * fraction:.2f}%"


def where(c: Cell) -> str:
    """'round 3 (51.2% of weights remaining)'."""
    return f"round {c.round} ({fmt_percent_remaining(c.percent_remaining)}% of weights remaining)"


def ties(rounds: Sequence[int]) -> str:
    """' (tied with rounds 1, 2; the sparsest is named)', or '' without ties."""
    if not rounds:
        return ""
    word = "round" if len(rounds) == 1 else "rounds"
    return f" (tied with {word} {', '.join(map(str, sorted(rounds)))}; the sparsest is named)"


def trials(n: int) -> str:
    """'1 trial', '5 trials'."""
    return f"{n} trial" if n == 1 else f"{n} trials"


def share(value: float) -> str:
    """A share of bootstrap resamples, whole percent: '81%'."""
    return f"{100.0 * value:.0f}%"


def fmt_p(p: float) -> str:
    """'0.012', '< 0.001'."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def difference_text(d: Difference, unit: str, decimals: int = 2, extra: str = "") -> str:
    """'+0.57 pp (95% interval +0.30 to +0.81, 5 trials)' or '… (2 trials: no interval
    possible)'; `extra` is appended inside the parentheses."""
    value = f"{signed(d.mean, decimals)} {unit}"
    if d.ci_low is None or d.ci_high is None:
        return f"{value} ({trials(d.n_trials)}: no interval possible)"
    return (
        f"{value} (95% interval {signed(d.ci_low, decimals)} to "
        f"{signed(d.ci_high, decimals)}, {trials(d.n_trials)}{extra})"
    )


def verdict(d: Difference, above: str, below: str, decimals: int = 2) -> str:
    """`above` / `below` when the interval, as printed (`decimals`), excludes 0, else
    "no clear difference"; "" when there is no interval."""
    if d.ci_low is None or d.ci_high is None:
        return ""
    if round(d.ci_low, decimals) > 0:
        return above
    if round(d.ci_high, decimals) < 0:
        return below
    return "no clear difference"


def with_verdict(d: Difference, unit: str, above: str, below: str, decimals: int = 2) -> str:
    """`difference_text` followed by its `verdict`, where there is one."""
    text = difference_text(d, unit, decimals)
    word = verdict(d, above, below, decimals)
    return f"{text}: {word}" if word else text


def holm_text(p_holm: float | None, family: int) -> str:
    """'; Holm p 0.012 over 15 rounds' ('' without a p)."""
    if p_holm is None:
        return ""
    return f"; Holm p {fmt_p(p_holm)} over {family} round{'s' if family != 1 else ''}"


def gap_text(g: ControlGap, above: str, below: str) -> str:
    """A ticket − control difference with its Holm-adjusted verdict (`gap_sign`)."""
    text = difference_text(g.difference, "pp", 2, holm_text(g.p_holm, g.family))
    if g.p_holm is None:
        return text
    word = {1: above, -1: below}.get(gap_sign(g), "no clear difference")
    return f"{text}: {word}"


def censored_note(c: Cell) -> str:
    """'2/5 runs censored'."""
    return f"{c.n_censored}/{c.n_runs} runs censored"


def early_stop_value(c: Cell) -> str:
    """Mean early-stop iteration, as a lower bound ('≥ 9660') when runs are censored."""
    mean = fmt_iteration(c.early_stop.mean)
    return f"≥ {mean}" if c.censored else mean
