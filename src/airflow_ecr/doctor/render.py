"""How the results read: a table for people (:func:`render_table`), JSON for machines (:func:`to_json`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from airflow_ecr import exit_codes
from airflow_ecr.doctor.results import CheckResult, exit_code


def to_json(results: Sequence[CheckResult], image: str | None = None) -> dict[str, Any]:
    """What ``--json`` prints: ``{"ok", "exit_code", "image", "checks": [...]}``."""
    code = exit_code(results)
    return {"ok": code == exit_codes.EXIT_OK, "exit_code": code, "image": image, "checks": [asdict(r) for r in results]}


_STYLES = {
    "ok": ("ok", "green"),
    "warn": ("warn", "yellow"),
    "fail": ("FAIL", "bold red"),
    "info": ("info", "cyan"),
    "skip": ("skipped", "dim"),
}


def render_table(
    results: Sequence[CheckResult], image: str | None = None, width: int = 120, color: bool = False
) -> str:
    """
    The results as a table (rich), then one line with the verdict and exit code.

    :param results: the results, in order.
    :param image: the image checked, for the title.
    :param width: the table's width in characters.
    :param color: whether to emit ANSI colors.
    """
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table()
    table.add_column("Check", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Result")
    for result in results:
        label, style = _STYLES[result.status]
        text = Text(result.summary)
        if result.fix:
            text.append(f"\nfix: {result.fix}", style="bold" if result.status == "fail" else "")
        table.add_row(result.title, Text(label, style=style), text)
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system="standard" if color else None, highlight=False)
    console.print(f"airflow-ecr doctor{f': {image}' if image else ''}", markup=False, soft_wrap=True)
    console.print(table)
    code = exit_code(results)
    failed = next((r for r in results if r.status == "fail"), None)
    warnings = sum(r.status == "warn" for r in results)
    skipped = sum(r.status == "skip" for r in results)
    if failed is not None:
        console.print(f"{failed.title} failed: exit code {code}")
    else:
        notes = [f"{n} {what}" for n, what in ((warnings, "warning(s)"), (skipped, "skipped")) if n]
        console.print("no check failed" + (f" ({', '.join(notes)})" if notes else ""))
    # rich pads the title and lines to the full width: no trailing blanks in logs and mails.
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())
