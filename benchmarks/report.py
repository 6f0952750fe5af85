"""
Write a benchmark report (``bench.py``'s dict) as ``latest.json``, ``latest.md`` and ``latest.png``.

``python benchmarks/report.py benchmarks/results/latest.json`` renders the Markdown and the chart
again from the JSON. Reports of a partial run (``--only per-process``) and reports written before the
per-new-process figures existed render too (their missing columns are left out).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from credential_helper import KINDS, LABELS
from targets import PER_PROCESS_COMMAND

ORDER = ("ours", "ours_secrets", "helper", "naive", "cli", "floor")
SHORT = {
    "ours": "airflow-ecr\noperator",
    "ours_secrets": "airflow-ecr\nsecrets backend",
    "helper": "credential\nhelper",
    "naive": "EcrHook +\ndocker login",
    "cli": "CLI\ndelete+add",
    "floor": "floor\n(anonymous)",
}
PEERS = ("helper", "naive", "cli")


DIGEST_SCENARIOS = {
    "local": "image local, recorded from the daemon",
    "pull": "image pulled, recorded from the pull",
    "local_resolved": "resolve_digest=True, image local",
    "pin_3_images": "pin task, 3 distinct images",
    "policy_cold": "image policy (scan + Notation signature), verdict not cached on the host",
    "policy_warm": "image policy (scan + Notation signature), the host's cached verdict",
}


def fmt(value: float | None) -> str:
    """A number with sensible precision (ms, ratios)."""
    if value is None:
        return "—"
    if value == int(value) and abs(value) < 1e6:
        return f"{int(value):,}"
    if abs(value) < 1:
        return f"{value:.3f}"
    if abs(value) < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def spread(stats: dict[str, Any] | None) -> str:
    """``median (p10-p90)``, or — when not measured."""
    if not stats or not stats.get("n"):
        return "—"
    if stats["n"] == 1 or stats["p10"] == stats["p90"]:
        return f"{fmt(stats['median'])} (n={stats['n']})"
    return f"{fmt(stats['median'])} ({fmt(stats['p10'])}-{fmt(stats['p90'])}, n={stats['n']})"


def ratio(stats: dict[str, Any] | None) -> str:
    if not stats or not stats.get("n"):
        return "—"
    if stats["n"] == 1 or stats["p10"] == stats["p90"]:
        return f"{fmt(stats['median'])}x (n={stats['n']})"
    return f"{fmt(stats['median'])}x ({fmt(stats['p10'])}-{fmt(stats['p90'])})"


def processes_cell(result: dict[str, Any] | None, planned: int) -> str:
    """ECR calls of the processes-at-once figure (with the process count when it differs)."""
    if not result:
        return "—"
    if result["processes"] == planned:
        return fmt(result["ecr_calls"])
    return f"{fmt(result['ecr_calls'])} ({result['processes']} processes)"


# The credential-step columns: (figures key, state, heading).
CREDENTIAL_COLUMNS = (
    ("credential_overhead_per_process_ms", "warm", "credential overhead per new task process, warm"),
    ("credential_overhead_per_process_ms", "cold", "cold, new task process"),
    ("credential_overhead_ms", "warm", "warm, in-process"),
    ("credential_overhead_ms", "cold", "cold, in-process"),
)
RATIO_COLUMNS = (
    ("credential_overhead_per_process_warm", "warm overhead ÷ airflow-ecr, new task process"),
    ("credential_overhead_per_process_cold", "cold overhead ÷ airflow-ecr, new task process"),
    ("credential_overhead_warm", "warm ÷ airflow-ecr, in-process"),
    ("credential_overhead_cold", "cold ÷ airflow-ecr, in-process"),
)


def _header(report: dict[str, Any]) -> list[str]:
    machine = report["machine"]
    title = "# airflow-ecr and the ways people pull ECR images from Airflow today"
    if report.get("only"):
        title += f" (only {report['only']})"
    if report["quick"]:
        title += " (quick run)"
    return [
        title,
        "",
        f"`{report['command']}` on {report['date']}, {report['duration_s']} s: {machine['cpus']} CPUs "
        f"({machine['cpu'] or machine['platform']}), {machine['memory']}, Python {machine['python']}, "
        f"load average {machine['load_average_before'][0]:.1f} before / {machine['load_average_after'][0]:.1f} after. "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items())
        + ".",
        "",
    ]


def _per_process_lines(report: dict[str, Any]) -> list[str]:
    """How the per-process figures were taken, the ECR calls during them, and the profile if any."""
    figures = report["figures"]
    names = report["approaches"]
    per = figures.get("per_process")
    if not per:
        return []
    calls = per.get("ecr_calls", {})
    lines = [
        f"Per new task process: {per['rounds']} rounds (cli in the first {per.get('cli_rounds', 0)}), one forked "
        f"task process per sample; airflow-ecr imported from `{per.get('airflow_ecr')}` in the task processes. "
        "ECR calls during those steps, warm / cold: "
        + "; ".join(
            f"{names[n]}: {calls.get('warm', {}).get(n, 0)} / {calls.get('cold', {}).get(n, 0)}"
            for n in ORDER
            if n in calls.get("warm", {})
        )
        + ".",
        "",
    ]
    floor = per.get("floor")
    if floor:
        lines += [
            "The floor of a warm step in a new task process (floor.py): what every warm step must do, each timed "
            "alone in its own new task process (ms: median (p10-p90, n)):",
            "",
            "| step | time |",
            "|---|---|",
            *(f"| {floor['labels'][name]} | {spread(got)} |" for name, got in floor["steps_ms"].items()),
            f"| **the least a warm step costs here** (the sum of the medians but the timer's) | "
            f"**{floor['floor_ms']:.3g} ms** |",
            "",
        ]
    for state, text in (per.get("profile") or {}).items():
        lines += [f"Profile of airflow-ecr's {state} step in one new task process (cProfile, cumulative):", ""]
        lines += ["```text", *text.rstrip().splitlines(), "```", ""]
    return lines


def _digest_lines(report: dict[str, Any]) -> list[str]:
    """What recording and pinning digests cost (issue 14), per new task process."""
    record = report["figures"].get("image_record")
    if not record:
        return []
    lines = [
        "What knowing which image ran costs, per new task process (ms: median (p10-p90, n); requests: the most "
        "any task of the scenario made):",
        "",
        "| task | record step | resolve step | policy check | whole task | registry requests "
        "| of which by the task process | DescribeImageScanFindings |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scenario, label in DIGEST_SCENARIOS.items():
        got = record.get(scenario)
        if got:
            check = spread(got["check_ms"]) if "check_ms" in got else "-"
            lines.append(
                f"| {label} | {spread(got['record_ms'])} | {spread(got['resolve_ms'])} | {check} "
                f"| {spread(got['task_ms'])} | {got['requests_min']}-{got['requests_max']} "
                f"| {got['task_process_requests_max']} | {got.get('scan_calls_max', 0)} |"
            )
    return [*lines, ""]


FLEET_LABELS = {
    "ours": "airflow-ecr (retry policy: standard, 7 attempts)",
    "ours_3_attempts": "airflow-ecr with botocore's default 3 attempts (the policy before)",
    "helper": "amazon-ecr-credential-helper (a cache per host)",
    "ours_helper": "docker-credential-airflow-ecr (a cache per host, no docker_conn_id)",
}
FLEET_SCENARIOS = {
    "full": "bucket full",
    "drained": "bucket drained by another deployment",
    "tenth": "a tenth of ECR's bucket",
}


def _fleet_lines(report: dict[str, Any]) -> list[str]:
    """A cold fleet against ECR's rate limit (issue 15): one row per scenario and approach."""
    fleet = report["figures"].get("fleet")
    if not fleet:
        return []
    bucket = fleet["bucket"]
    lines = [
        f"A cold fleet: {fleet['hosts']} hosts x {fleet['processes_per_host']} task processes released at once "
        f"({fleet['hosts'] * fleet['processes_per_host']} tasks), against the emulator's rate limit of "
        f"{bucket['bucket_capacity']} calls at once, refilled at {fmt(bucket['bucket_refill'])} per second "
        "(ECR's, per account and region):",
        "",
        "| bucket | calls at once, per second | approach | tasks failed | ECR calls | throttled "
        "| last task's token (s) | first error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scenario, label in FLEET_SCENARIOS.items():
        for approach, got in fleet["scenarios"].get(scenario, {}).items():
            error = got["first_error"].replace("|", "/")
            capacity, refill = got.get("bucket") or (bucket["bucket_capacity"], bucket["bucket_refill"])
            lines.append(
                f"| {label} | {capacity}, {fmt(refill)} | {FLEET_LABELS.get(approach, approach)} "
                f"| {got['failed']} of {got['tasks']} "
                f"| {got['ecr_calls']} | {got['throttled']} | {fmt(got['last_token_s'])} | {error[:160] or '—'} |"
            )
    return [*lines, ""]


def markdown(report: dict[str, Any], image: str = "latest.png") -> str:
    """The report as Markdown: the main table, the ratios, the targets, and what each figure measures."""
    figures = report["figures"]
    names = report["approaches"]
    ratios = figures.get("ratios", {})
    lines = _header(report)
    if report.get("only") in ("digests", "fleet", "credential-helper"):
        if report["only"] == "credential-helper":
            lines += helper_lines(report)
        else:
            lines += _digest_lines(report) if report["only"] == "digests" else _fleet_lines(report)
        lines += ["Targets:", "", "| target | measured | met |", "|---|---|---|"]
        for target in report["targets"]:
            lines.append(f"| {target['target']} | {target['measured']} | {'yes' if target['met'] else '**no**'} |")
        notes = report["notes"]
        if report["only"] == "fleet":  # what the fleet's figures measure, and how the helper is reached
            notes = [note for note in notes if "fleet" in note or "TLS forwarder" in note]
        if report["only"] == "credential-helper":
            notes = [note for note in notes if "credential-helper" in note or "TLS forwarder" in note]
        return "\n".join([*lines, "", *(f"- {note}" for note in notes)]) + "\n"
    full = "end_to_end_ms" in figures
    columns = [c for c in CREDENTIAL_COLUMNS if c[0] in figures]
    lines += [
        "Times in ms: median (p10-p90, n). Per new task process: one parent that imported the DAGs' modules forks "
        "a task process per sample, which times the step inside itself. In-process: in the benchmark's own "
        "long-lived process, interleaved round by round.",
        "",
    ]
    shown = [n for n in ORDER if n in names and n != "floor"]
    if not full:  # a partial run (--only per-process): its approaches only
        per = figures["credential_overhead_per_process_ms"]["warm"]
        shown = [n for n in shown if per.get(n, {}).get("n")]
    if full:
        sequential = figures["ecr_calls"]["sequential_tasks"]
        concurrent = figures["ecr_calls"]["concurrent_processes"]
        requests = figures["registry_requests_per_task"]
        e2e = figures["end_to_end_ms"]
        processes = figures["plan"]["processes"]
        headings = [c[2] for c in columns] + [
            "image already local",
            f"ECR calls, {sequential['tasks']} sequential tasks",
            f"ECR calls, {processes} processes at once (cold)",
            "registry auth round trips per task (pull / local)",
            "end-to-end task, pull",
            "vs floor",
        ]
    else:
        headings = [c[2] for c in columns]
    lines += ["| approach | " + " | ".join(headings) + " |", "|---" * (len(headings) + 1) + "|"]
    for name in (*shown, "floor") if full else shown:
        row = [names[name]]
        if name == "floor":
            row += ["—"] * (len(columns) + 3)
        else:
            row += [spread(figures[key][state].get(name)) for key, state, _ in columns]
            if full:
                row += [
                    spread(figures["credential_overhead_ms"].get("image_local", {}).get(name)),
                    fmt(sequential.get(name)),
                    processes_cell(concurrent.get(name), processes),
                ]
        if full:
            pull, local = requests["pull"].get(name), requests["image_local"].get(name)
            row.append(f"{pull['auth']} / {local['auth']}" if pull and local else "—")
            row.append(spread(e2e["pull"].get(name)))
            row.append("1x" if name == "floor" else ratio(ratios["end_to_end_pull_vs_floor"].get(name)))
        lines.append("| " + " | ".join(row) + " |")
    if full:
        lines += ["", f"![The same figures as a chart]({image})"]
    ratio_columns = [c for c in RATIO_COLUMNS if c[0] in ratios]
    if full:
        ratio_columns += [
            ("end_to_end_pull_vs_floor", "end-to-end ÷ floor, pull"),
            ("end_to_end_image_local_vs_floor", "end-to-end ÷ floor, image local"),
        ]
    lines += [
        "",
        "Ratios, pair by pair within each round (median, p10-p90):",
        "",
        "| peer | " + " | ".join(c[1] for c in ratio_columns) + " |",
        "|---" * (len(ratio_columns) + 1) + "|",
    ]
    for name in (*PEERS, "ours_secrets", "ours"):
        if name not in shown:
            continue
        row = [names[name]]
        for key, _ in ratio_columns:
            if name == "ours" and not key.startswith("end_to_end"):
                row.append("1x")
            else:
                row.append(ratio(ratios[key].get(name)))
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Targets:", "", "| target | measured | met |", "|---|---|---|"]
    for target in report["targets"]:
        lines.append(f"| {target['target']} | {target['measured']} | {'yes' if target['met'] else '**no**'} |")
    lines += [
        "",
        "The per-new-process figures of airflow-ecr and the credential helper alone, in well under a minute "
        f"(for work on the hot path): `{PER_PROCESS_COMMAND}`.",
        "",
    ]
    lines += _per_process_lines(report)
    lines += _digest_lines(report)
    if full:
        lines += _full_run_lines(report)
    lines += [
        "Repetitions: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in figures["plan"].items()) + ".",
        "",
        "What each figure measures:",
        "",
    ]
    lines += [f"- {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def _full_run_lines(report: dict[str, Any]) -> list[str]:
    figures = report["figures"]
    names = report["approaches"]
    ratios = figures["ratios"]
    concurrent = figures["ecr_calls"]["concurrent_processes"]
    requests = figures["registry_requests_per_task"]
    processes = figures["plan"]["processes"]
    warm_calls = figures["ecr_calls"].get("during_warm_credential_steps", {})
    per_registry = {
        name: ", ".join(f"{k}: {v}" for k, v in sorted(c["ecr_calls_per_registry"].items()))
        for name, c in concurrent.items()
    }
    return [
        f"{processes} processes at once, ECR calls by registry: "
        + "; ".join(f"{names[n]}: {per_registry[n]}" for n in per_registry)
        + ".",
        "",
        "Credential time inside the real tasks that pulled (instrumented, see below): "
        + "; ".join(
            f"{names[n]}: {spread(figures['credential_in_task_ms']['pull'].get(n))} ms"
            for n in ORDER
            if n in figures["credential_in_task_ms"]["pull"]
        )
        + "; ratios to airflow-ecr's, pair by pair: "
        + "; ".join(f"{names[n]}: {ratio(r)}" for n, r in ratios.get("credential_overhead_in_task_warm", {}).items())
        + ".",
        "",
        f"ECR calls during the {warm_calls.get('steps')} warm in-process credential steps of each approach: "
        + "; ".join(f"{names[n]}: {v}" for n, v in warm_calls.items() if n != "steps")
        + ".",
        "",
        "Registry requests per task (all, manifests included; pull / local): "
        + "; ".join(
            f"{names[n]}: {requests['pull'][n]['total']} / {requests['image_local'][n]['total']}"
            for n in ORDER
            if n in requests["pull"]
        )
        + ".",
        "",
    ]


def chart(report: dict[str, Any], path: Path) -> None:
    """The same figures as a PNG (matplotlib, Agg); a partial run draws its credential figures only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = report["figures"]
    names = report["approaches"]
    full = "end_to_end_ms" in figures
    shown = [n for n in ORDER if n != "floor" and n in names]
    short = {n: SHORT.get(n, n) for n in names}
    fig, axes = plt.subplots(2, 2, figsize=(15, 10)) if full else plt.subplots(1, 1, figsize=(8, 5), squeeze=False)
    fig.suptitle(
        f"airflow-ecr and its peers ({report['date']}, {report['machine']['cpus']} CPUs"
        f"{', quick run' if report['quick'] else ''})"
    )

    ax = axes[0][0]
    series = [
        (key, state, f"{state}, {'new task process' if 'per_process' in key else 'in-process'}")
        for key, state, _ in CREDENTIAL_COLUMNS
        if key in figures
    ]
    if "image_local" in figures.get("credential_overhead_ms", {}):
        series.append(("credential_overhead_ms", "image_local", "image already local"))
    width = 0.8 / len(series)
    for offset, (key, state, label) in enumerate(series):
        # Not measured: no bar; measured 0 (no credential code ran): drawn at 0.001 and labelled 0.
        stats = [figures[key].get(state, {}).get(n) or {} for n in shown]
        measured = [st for st in stats if st.get("n")]
        xs = [i + (offset - (len(series) - 1) / 2) * width for i, st in enumerate(stats) if st.get("n")]
        values = [max(st["median"], 1e-3) for st in measured]
        low = [v - max(st["p10"], 1e-3) for st, v in zip(measured, values, strict=True)]
        high = [max(st["p90"], 1e-3) - v for st, v in zip(measured, values, strict=True)]
        bars = ax.bar(xs, values, width, yerr=[low, high], capsize=2, label=label)
        ax.bar_label(bars, labels=[fmt(st["median"]).replace(",", "") for st in measured], fontsize=5)
    ax.set_yscale("log")
    ax.set_xticks(range(len(shown)), [short[n] for n in shown], fontsize=8)
    ax.set_ylabel("ms per task (log; 0 drawn at 0.001)")
    ax.set_title("Credential overhead added to one task (median, p10-p90)")
    ax.legend(fontsize=7)
    if not full:
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return

    ax = axes[0][1]
    sequential = figures["ecr_calls"]["sequential_tasks"]
    concurrent = figures["ecr_calls"]["concurrent_processes"]
    xs = list(range(len(shown)))
    seq = [sequential.get(n, 0) for n in shown]
    bars1 = ax.bar([x - 0.2 for x in xs], seq, 0.4, label=f"{sequential['tasks']} sequential tasks")
    measured_at_once = [i for i, n in enumerate(shown) if n in concurrent]
    con = [concurrent[shown[i]]["ecr_calls"] for i in measured_at_once]
    tags = [
        f"{c} ({concurrent[shown[i]]['processes']} p.)"
        if concurrent[shown[i]]["processes"] != figures["plan"]["processes"]
        else str(c)
        for i, c in zip(measured_at_once, con, strict=True)
    ]
    bars2 = ax.bar(
        [x + 0.2 for x in measured_at_once], con, 0.4, label=f"{figures['plan']['processes']} processes at once, cold"
    )
    ax.bar_label(bars1, fontsize=8)
    ax.bar_label(bars2, labels=tags, fontsize=8)
    ax.set_xticks(xs, [short[n] for n in shown], fontsize=8)
    ax.set_ylabel("GetAuthorizationToken calls")
    ax.set_title("ECR API calls")
    ax.legend(fontsize=8)

    ax = axes[1][0]
    requests = figures["registry_requests_per_task"]
    everyone = [n for n in ORDER if n in requests["pull"]]
    xs = list(range(len(everyone)))
    pull = [requests["pull"][n]["auth"] for n in everyone]
    local = [requests["image_local"][n]["auth"] for n in everyone]
    bars1 = ax.bar([x - 0.2 for x in xs], pull, 0.4, label="image pulled")
    bars2 = ax.bar([x + 0.2 for x in xs], local, 0.4, label="image already local")
    ax.bar_label(bars1, fontsize=8)
    ax.bar_label(bars2, fontsize=8)
    ax.set_xticks(xs, [short[n] for n in everyone], fontsize=8)
    ax.set_ylabel("GET /v2/ requests per task")
    ax.set_title("Registry round trips for authentication")
    ax.legend(fontsize=8)

    ax = axes[1][1]
    e2e = figures["end_to_end_ms"]
    for offset, kind in enumerate(("pull", "image_local")):
        stats = [e2e[kind].get(n) or {} for n in everyone]
        values = [s.get("median") or 0 for s in stats]
        low = [v - (s.get("p10") or v) for s, v in zip(stats, values, strict=True)]
        high = [(s.get("p90") or v) - v for s, v in zip(stats, values, strict=True)]
        ax.bar(
            [x + (offset - 0.5) * 0.4 for x in xs],
            values,
            0.4,
            yerr=[low, high],
            capsize=2,
            label="image pulled" if kind == "pull" else "image already local",
        )
    ax.set_yscale("log")
    ax.set_xticks(xs, [short[n] for n in everyone], fontsize=8)
    ax.set_ylabel("ms per task (log)")
    ax.set_title("End-to-end task time (median, p10-p90)")
    ax.legend(fontsize=8)

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(report: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write the report to ``out`` (JSON), and next to it as ``.md`` and ``.png``; return the paths."""
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = {"json": out, "md": out.with_suffix(".md"), "png": out.with_suffix(".png")}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    paths["md"].write_text(markdown(report, paths["png"].name))
    if report.get("only") in ("digests", "fleet", "credential-helper"):  # a table of its own, no chart
        del paths["png"]
    else:
        chart(report, paths["png"])
    return paths


if __name__ == "__main__":
    import sys

    source = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results" / "latest.json")
    for written in write_outputs(json.loads(source.read_text()), source).values():
        print(written)


def helper_lines(report: dict[str, Any]) -> list[str]:
    """The Markdown table of ``--only credential-helper``."""
    figures = report["figures"].get("credential_helper")
    if not figures:
        return []
    go_version = report.get("versions", {}).get("docker-credential-ecr-login", "")
    lines = [
        f"Warm `get`, a new process each (ms: median (p10-p90, n)); registry {figures['host']}:",
        "",
        "| process | warm get | ECR calls during the warm rounds |",
        "|---|---|---|",
    ]
    for kind in KINDS:
        calls = figures["warm_ecr_calls"].get(kind, "—")
        label = LABELS[kind].format(go_version=go_version)
        lines.append(f"| {label} | {spread(figures['warm_get_ms'][kind])} | {calls} |")
    lines += [
        "",
        f"airflow-ecr / Go helper, warm: **{figures['warm_ratio_ours_to_go']}x**.",
        "",
        "Cold: N `get` processes started together on an empty cache (a host's tasks pulling at once):",
        "",
        "| helper | processes | failed | ECR calls | of which throttled | last answer (s) |",
        "|---|---|---|---|---|---|",
    ]
    for kind in ("ours", "go"):
        got = figures["cold_burst"][kind]
        lines.append(
            f"| {LABELS[kind].format(go_version=go_version)} | {got['processes']} | {got['failed']} "
            f"| {got['ecr_calls']} | {got['throttled']} | {got['last_answer_s']} |"
        )
    return [*lines, ""]
