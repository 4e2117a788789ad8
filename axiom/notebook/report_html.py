"""The HTML report of an executed notebook (nbconvert): what a reader of the run folder opens."""

from __future__ import annotations

import logging
from html import escape as html_escape
from pathlib import Path

REPORT_HTML = "report.html"


def render_html(executed: Path, target: Path) -> Path:
    """The executed notebook as HTML without code cells, prompts, stderr (logs and warnings stay in the
    executed notebook) or progress-bar widgets (no state to show offline); markdown, tables and charts remain.
    Each chart gets the nearest markdown heading above it as its alternative text."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    nb.metadata.pop("widgets", None)
    alts: list[str] = []
    heading = executed.stem
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found = [line.lstrip("#").strip() for line in cell.source.splitlines() if line.startswith("#")]
            heading = found[-1] if found else heading
            continue
        if cell.cell_type != "code":
            continue
        kept = []
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream" and o.get("name") == "stderr":
                continue
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {}):
                continue
            if "image/png" in o.get("data", {}):
                alts.append(f"chart: {heading}")
            kept.append(o)
        cell.outputs = kept
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    level = exporter.log.level
    exporter.log.setLevel(logging.ERROR)  # its "alternative text is missing" warning: we set it below
    try:
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": executed.stem}})
    finally:
        exporter.log.setLevel(level)
    default_alt = 'alt="No description has been provided for this image"'
    for alt in alts:
        body = body.replace(default_alt, f'alt="{html_escape(alt)}"', 1)
    target.write_text(body, encoding="utf-8")
    return target
