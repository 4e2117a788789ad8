"""What the notebooks show as Markdown, with every piece of outside text escaped.

Questions, answers, documents (their text and file names), dataset fields and run names are data, never
markup:
a question holding `<img src=x onerror=...>` or an answer holding `[x](javascript:...)` must show as those
characters, in JupyterLab (marked) as in the HTML report (nbconvert's mistune), not become a live tag or link.
Every notebook output passes one of three ways, each escaping such text:

- tables are pandas DataFrames, whose HTML escapes every cell, header and index label (pandas's `escape=True`,
  never turned off here); `axiom.reporting.notebook_display` also marks them for MathJax to leave alone, so a
  `$...$` in a document is not typeset;
- Markdown is built here: `markdown_text` escapes a value for the inside of a Markdown paragraph, and
  `answer_markdown` (02_query's answer view) escapes the question, the answer, the generator, the degraded
  reason and the citations' sources;
- printed text (`print`, audits, verdicts) is a stream output, which both render as text.

The module is small and imports nothing heavy (IPython only when a view is built).
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from IPython.display import HTML, Markdown

    from axiom.types import Answer

# ASCII punctuation that means something to Markdown (emphasis, code, links and images, headings, lists,
# tables, strikethrough, math, setext underlines, the colon of bare-URL links): backslash-escaped, which
# CommonMark, GFM (marked) and mistune all read as the character itself. `&`, `<` and `>` become HTML entities
# instead (no tag, autolink or entity survives).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$=:])")


def markdown_text(value: object) -> str:
    """`value` as literal text inside a Markdown paragraph: no tag, link, image, emphasis or math can come of
    it. None is the empty string; line breaks stay line breaks."""
    text = "" if value is None else str(value)
    return html.escape(_MARKDOWN_SPECIAL.sub(r"\\\1", text), quote=False)


def answer_markdown(answer: Answer) -> Markdown:
    """02_query's answer view: the question, the answer with its generator, and the numbered citations, as an
    IPython Markdown object with every value from the question, the answer or the documents escaped."""
    from IPython.display import Markdown

    lines = [f"**Q:** {markdown_text(answer.question)}", "",
             f"**A** ({markdown_text(answer.generator)}): {markdown_text(answer.answer)}"]
    if answer.degraded:
        lines += ["", f"*degraded: {markdown_text(answer.degraded_reason)}*"]
    if answer.citations:
        lines += ["", "**Citations**", ""]
        lines += [f"{c.n}. <code>{markdown_text(c.source)}</code>"
                  + (f" p.{c.page}" if c.page is not None else "")
                  + f" (score {c.score:.3f})" for c in answer.citations]
    return Markdown("\n".join(lines))


def highlighted_answer_html(answer: str, spans: list[dict[str, Any]]) -> str:
    """The answer as HTML with each unsupported claim (`{start, end}` character offsets) in a `<mark>`; every
    character of the answer escaped. Overlapping or out-of-range spans are clipped, never trusted."""
    out, at = [], 0
    for span in sorted(spans, key=lambda s: int(s.get("start", 0))):
        start = min(max(int(span.get("start", 0)), at), len(answer))
        end = min(max(int(span.get("end", 0)), start), len(answer))
        if end <= start:
            continue
        out += [html.escape(answer[at:start]), '<mark title="unsupported">', html.escape(answer[start:end]),
                "</mark>"]
        at = end
    out.append(html.escape(answer[at:]))
    return "".join(out)


def unsupported_claims_view(results: pd.DataFrame, limit: int = 10) -> HTML:
    """03_evaluate's groundedness view: the `limit` least grounded answers of a run's results table, each with
    its unsupported claims highlighted, as IPython HTML (question, id and answer escaped)."""
    import json

    from IPython.display import HTML

    if "groundedness" not in results or "unsupported_claims" not in results:
        return HTML("<p>This run has no groundedness scores.</p>")
    rows = results[results["groundedness"].notna()].sort_values("groundedness").head(limit)
    if rows.empty:
        return HTML("<p>No answer was scored for groundedness (n/a: no contexts or no claim).</p>")
    parts = ['<table><thead><tr><th>id</th><th>groundedness</th><th>supported claims</th>'
             '<th>question</th><th>answer (unsupported claims marked)</th></tr></thead><tbody>']
    for _, row in rows.iterrows():
        spans = json.loads(row["unsupported_claims"] or "[]")
        parts.append(f"<tr><td>{html.escape(str(row['id']))}</td><td>{row['groundedness']:.3f}</td>"
                     f"<td>{row['supported_claims']:.2f}</td><td>{html.escape(str(row['question']))}</td>"
                     f"<td style=\"text-align:left\">{highlighted_answer_html(str(row['answer']), spans)}"
                     "</td></tr>")
    parts.append("</tbody></table>")
    return HTML("".join(parts))
