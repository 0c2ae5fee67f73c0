"""The audit's text output: each θ0's tree of links, RUNNING runs, problems, a verdict."""

from __future__ import annotations

from typing import Any

from lottery.audit.chain import Auditor
from lottery.audit.links import Link
from lottery.core.conditions import CONTROLS


def _line(link: Link) -> str:
    sha = link.sha256[:16] if link.sha256 else "unreadable"
    run = f"run {link.run_id}" if link.run_id else "run -"
    status = "ok" if not link.problems else f"{len(link.problems)} problem(s)"
    return f"{link.label}  {link.path}  sha256 {sha}  stage {link.stage or '?'}  {run}  {status}"


def _running_line(entry: dict[str, Any]) -> str:
    """One RUNNING run and what its owner's state means."""
    state = {
        "alive": "in progress",
        "gone": "ORPHAN (process gone)",
        "elsewhere": f"on {entry.get('where') or 'host ' + str(entry['host'])}: "
        "not checkable from here",
    }[entry["owner"]]
    done = "; marked FAILED (--repair)" if entry["repaired"] else ""
    return (
        f"RUNNING run {entry['run_id']} ({entry['run_name']}, stage {entry['stage']}, "
        f"pid {entry['pid']}): {state}{done}"
    )


def machine_lines(machines: dict[str, int], here: str) -> list[str]:
    """Which machine kinds trained the audited runs, against this machine's: where a rebuild
    would give the same bits."""
    if not machines:
        return []
    if len(machines) == 1:
        [(kind, runs)] = machines.items()
        where = (
            "this machine's kind: a rebuild here gives the same bits"
            if kind == here
            else f"not this machine's ({here}): a rebuild here may give other bits"
        )
        return [f"trained on: {kind} ({runs} run(s)); {where}"]
    lines = [f"trained on {len(machines)} machine kinds (each run's bits rebuild only on its own):"]
    for kind, runs in machines.items():
        lines.append(f"  {kind}: {runs} run(s){'  (this machine)' if kind == here else ''}")
    return lines


def render(result: dict[str, Any], auditor: Auditor) -> str:
    """The audited links as trees from each θ0, then problems and a verdict."""
    links = auditor.links
    children: dict[str | None, list[str]] = {}
    for lk in links.values():
        children.setdefault(lk.parent, []).append(lk.path)

    def order(rel: str) -> tuple[int, int, str]:
        lk = links[rel]
        rank = CONTROLS.index(lk.condition) if lk.condition in CONTROLS else len(CONTROLS)
        return (lk.round or 0, rank, rel)

    lines = [f"audit of {len(result['targets'])} mask(s) in {result['root']}"]
    lines.append(f"MLflow: {result['tracking_uri']}")

    def walk(rel: str, prefix: str, last: bool, top: bool) -> None:
        lk = links[rel]
        branch = "" if top else ("└─ " if last else "├─ ")
        lines.append(prefix + branch + _line(lk))
        inner = prefix + ("" if top else ("   " if last else "│  "))
        for run in lk.reproductions:
            lines.append(inner + f"   reproduction: run {run} (same stage, same hash)")
        kids = sorted(children.get(rel, []), key=order)
        for i, kid in enumerate(kids):
            walk(kid, inner, i == len(kids) - 1, False)

    roots = sorted(rel for rel, lk in links.items() if lk.parent is None)
    for rel in roots:
        lines.append("")
        walk(rel, "", True, True)
    lines.append("")
    lines += machine_lines(result.get("machines", {}), result.get("this_machine", ""))
    lines += [_running_line(entry) for entry in result.get("running", [])]
    probs = result["problems"]
    if probs:
        lines.append(f"FAILED: {len(probs)} disagreement(s):")
        lines += [f"  - {p['path']} [{p['check']}]: {p['message']}" for p in probs]
    else:
        n_rep = sum(len(lk.reproductions) for lk in links.values())
        rep = f"; {n_rep} reproduction run(s)" if n_rep else ""
        lines.append(f"OK: {len(links)} links agree: files, lineage, dvc.lock and MLflow{rep}.")
    return "\n".join(lines)
