"""The human-readable summary of a `lottery bench` result (`render`): the figures and
ratios, the evaluation share, the start-up and compute lines, the Conv-2 and stack lines,
the paper preset estimate (and a kept study's measured wall-clock against it), and every
target's PASS or FAIL. It reads the JSON-ready result only, so an old result renders too.
"""

from __future__ import annotations

from typing import Any

from lottery.bench import conv as bench_conv
from lottery.bench import stack as bench_stack
from lottery.bench.config import TARGET_SPEEDUP


def _render_figures(result: dict[str, Any]) -> list[str]:
    """The setting, every contender's rate and samples, and the ratios."""
    cfg, m = result["config"], result["machine"]
    lines = [
        f"LeNet-300-100, batch {cfg['batch_size']}, {cfg['window']}-iteration windows, "
        f"evaluation every {cfg['eval_every']}, median of {cfg['repeats']} "
        f"(device {m['device']}, load avg {m['loadavg_start'][0]:.1f} -> "
        f"{m['loadavg_end'][0]:.1f} on {m['cpu_count']} CPUs)",
        f"densities: {', '.join(f'{k} = {v:.1%}' for k, v in cfg['densities'].items())}",
        "",
        f"{'contender':<22}{'net-it/s':>10}{'ms/net-it':>11}   samples (net-it/s)",
    ]
    for key, f in result["figures"].items():
        r = f["net_it_per_s"]
        samples = ", ".join(f"{s:.0f}" for s in f["samples_net_it_per_s"])
        lines.append(f"{key:<22}{r:>10.1f}{1000 / r:>11.2f}   {samples}")
    lines += ["", "ratios:"]
    for name, r in result["ratios"].items():
        lines.append(f"  {name:<20} {r['value']:7.2f}x  ({r['numerator']} / {r['denominator']})")
    return lines


def _render_costs(result: dict[str, Any]) -> list[str]:
    """The evaluation shares, the stage start-up and the compute per net-iteration."""
    lines = ["", "evaluation share (K networks, 100% density):"]
    for name, e in result["evaluation"].items():
        at = e["eval_share_at_horizon"]
        lines.append(
            f"  {name:<10} test at every evaluation {e['eval_share_every_evaluation']:6.1%}; "
            + "; ".join(f"at a {int(h):,}-iteration horizon {v:.1%}" for h, v in at.items())
        )
    s = result["startup"]
    lines += [
        "",
        f"stage startup (fresh process, K={s['k']:.0f}, chunk of {s['chunk_iterations']:.0f}): "
        f"{s['startup_s']:.1f}s to the first trained chunk = interpreter {s['interpreter_s']:.1f}s "
        f"+ imports {s['imports_s']:.1f}s + data load {s['data_load_s']:.1f}s + engine build "
        f"{s['engine_build_s']:.1f}s + compile {s['compile_train_s']:.1f}s + chunk "
        f"{s['chunk_s']:.1f}s; evaluation compile {s['compile_eval_s']:.1f}s",
    ]
    if "startup_cached_s" in s:  # benchmarks from before the XLA compilation cache lack it
        lines.append(
            f"  with its programs in the XLA compilation cache: {s['startup_cached_s']:.1f}s "
            f"(compile {s['compile_train_cached_s']:.1f}s; evaluation compile "
            f"{s['compile_eval_cached_s']:.1f}s)"
        )
    c = result["compute"]
    f = {k: v / 1e6 for k, v in c["flops_per_net_iteration"].items()}
    return [
        *lines,
        "",
        f"compute per net-iteration: training {f['training']:.1f} MFLOP (forward "
        f"{f['forward']:.1f}, backward {f['backward']:.1f}) + evaluation "
        f"{f['evaluation']:.1f} MFLOP = {f['total']:.1f} MFLOP; evaluation is "
        f"{f['evaluation'] / f['total']:.0%} of the FLOPs",
        "  sustained: "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in c["gflops_per_s"].items())
        + f"; {TARGET_SPEEDUP:.0f}x (c) would need {c['gflops_per_s_for_target']:.0f} GFLOP/s",
    ]


def _render_estimate(p: dict[str, Any]) -> list[str]:
    """The paper preset estimate, per condition, and a kept study's measured wall-clock."""
    profile = p["profile"] or "none: every network to the horizon"
    point = f", prune.point {p['point']}" if "point" in p else ""
    lines = [
        "",
        f"paper preset estimate: {p['total_h']:.1f} h (patience {p['patience']:,}{point}, test "
        f"every {p['test_every']:,}; stopping profile {profile}; {p['assumptions']})",
    ]
    for name, c in p["conditions"].items():
        trains = ""
        if "trains_to_horizon" in c:
            trains = ", trains to the horizon" if c["trains_to_horizon"] else ", stops when settled"
        lines.append(
            f"  {name:<7} {c['stages']:>2} stages x K={c['k']:<2}: "
            f"{c['mean_stage_s'] / 60:.1f} min/stage, {c['total_s'] / 3600:.2f} h{trains}"
        )
    m = p.get("measured")
    if m:
        lines.append(
            f"  measured: {m['seconds'] / 3600:.2f} h on {m['machine']} ({m['study']}, commit "
            f"{m['commit'][:12]}, {m['started']} to {m['finished']}); estimate/measured "
            f"{m['estimate_over_measured']:.2f}"
        )
    return lines


def _render_targets(result: dict[str, Any]) -> list[str]:
    """Every target, PASS or FAIL, with its value and threshold."""
    lines = ["", "targets:"]
    for t in result["targets"]:
        verdict = "PASS" if t["pass"] else "FAIL"
        lines.append(
            f"  {verdict}  {t['name']}: {t['value']:.3g} ({t['direction']} {t['threshold']})"
        )
    return lines


def render(result: dict[str, Any]) -> str:
    """The human-readable summary of a `run` result."""
    conv = bench_conv.render(result["conv2"]) if "conv2" in result else []
    stack = bench_stack.render(result["stack"]) if "stack" in result else []
    return "\n".join(
        [
            *_render_figures(result),
            *_render_costs(result),
            *conv,
            *stack,
            *_render_estimate(result["paper_estimate"]),
            *_render_targets(result),
        ]
    )
