"""Build ``reproductions.md`` from every ``reproductions/*.json`` result in an output directory.

    python -m reproductions.report                   # docs/reproductions.md from docs/reproductions/*.json
    python -m reproductions.report --output DIR      # DIR/reproductions.md from DIR/reproductions/*.json

Each experiment script calls :func:`write_report` after writing its JSON, so the report always
shows every result present; this command only rebuilds it (e.g. after editing the text below).

A full run's section also includes ``reproductions/<name>.discussion.md`` when it exists: the
reading of the numbers written by hand after the run (what was seen and why it came out so),
which no script can generate. Quick-mode results never include it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reproductions.common import ARTIFACTS, DOCS, REPORT_NAME

ORDER = ("degradation", "wrn_dropout", "transfer", "precision")

INTRO = """# Reproductions at small scale

Published findings re-run at small scale on Fashion-MNIST (read offline, the trainer's default dataset),
each with its paper's recipe scaled to the data and to this project's 2-core CPU machine, run once as
planned and reported as it came out: no tuning towards the expected result. Every training run is a
separate `python -m trainers.run` process; the figures below come from the files it writes
(`metrics.json`, `history.csv`, `plan.json`). Validation figures are on a seeded, stratified 10 %
held out from the (sub)set of training images; test figures on the dataset's test images, measured
once at the end of each run on the epoch chosen on validation. Wall times are those of the trainer
processes on a machine shared with other jobs, so they overstate what the runs cost alone.

Each section is regenerated from `docs/reproductions/<name>.json` by its script
(`python -m reproductions.<name>`; `--quick` for a smoke test into a temporary directory), and
`python -m reproductions.report` rebuilds this page from the JSON files.
"""


def _table(table: dict[str, Any]) -> list[str]:
    """A Markdown table from ``{"header": [...], "rows": [[...], ...]}``."""
    header = table["header"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in table["rows"]]
    return lines


def _minutes(seconds: float) -> str:
    """Seconds as minutes with one decimal."""
    return f"{seconds / 60:.1f} min"


def render_section(result: dict[str, Any], discussion: str | None = None) -> str:
    """One experiment's section: claim, source, setup, command, wall time, seeds, table, plot, verdict."""
    quick = result.get("mode") == "quick"
    lines = [f"## {result['title']}", ""]
    if quick:
        lines += ["*Quick mode (a smoke test on a tiny subset): the numbers below say nothing about the claim.*", ""]
    lines += [
        f"**Claim.** {result['claim']}",
        "",
        f"**Source.** {result['source']}",
        "",
        f"**Setup.** {result['setup']}",
        "",
        f"**Command.** `{result['command']}` ({result['mode']} mode, run on {result['date']}); "
        f"wall time {_minutes(result['wall_seconds'])} over {len(result['runs'])} trainer runs "
        f"(summed; the machine was shared with other jobs). Seeds: {', '.join(str(s) for s in result['seeds'])}.",
        "",
        *_table(result["table"]),
        "",
    ]
    for table in result.get("extra_tables", []):
        lines += [table.get("caption", ""), "", *_table(table), ""]
    if result.get("plot"):
        lines += [f"![{result['title']}]({ARTIFACTS}/{result['plot']})", ""]
        if result.get("plot_caption"):
            lines += [result["plot_caption"], ""]
    lines += [f"**Verdict: {result['verdict']}.** {result['reason']}", ""]
    for note in result.get("notes", []):
        lines += [f"- {note}"]
    if result.get("notes"):
        lines += [""]
    if discussion and not quick:
        lines += ["**Discussion** (written after the run).", "", discussion.strip(), ""]
    lines += ["<details><summary>Trainer commands (one process each)</summary>", "", "```bash"]
    lines += [run["command"] for run in result["runs"]]
    lines += ["```", "", "</details>", ""]
    return "\n".join(lines)


def load_results(output: Path) -> list[dict[str, Any]]:
    """Every result JSON under ``<output>/reproductions/``, in the report's order."""
    results = [json.loads(p.read_text()) for p in sorted((output / ARTIFACTS).glob("*.json"))]
    results = [r for r in results if "verdict" in r and "title" in r]
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(results, key=lambda r: (rank.get(r["name"], len(ORDER)), r["name"]))


def render(output: Path) -> str:
    """The whole report for the results in ``output``."""
    results = load_results(output)
    lines = [INTRO, "| finding | verdict | mode |", "|---|---|---|"]
    lines += [f"| [{r['title']}](#{_anchor(r['title'])}) | {r['verdict']} | {r['mode']} |" for r in results]
    sections = [render_section(r, _discussion(output, r["name"])) for r in results]
    return "\n".join(lines) + "\n\n" + "\n".join(sections)


def _discussion(output: Path, name: str) -> str | None:
    """The hand-written discussion of a full run, if there is one."""
    path = output / ARTIFACTS / f"{name}.discussion.md"
    return path.read_text() if path.exists() else None


def _anchor(title: str) -> str:
    """The heading anchor GitHub makes from a title."""
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -")
    return kept.replace(" ", "-")


def write_report(output: Path) -> Path:
    """Write ``<output>/reproductions.md`` atomically; returns its path."""
    output.mkdir(parents=True, exist_ok=True)
    path = output / REPORT_NAME
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(render(output))
    tmp.replace(path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m reproductions.report", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DOCS, help="directory holding reproductions/ (default: docs)")
    args = parser.parse_args(argv)
    print(write_report(args.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
