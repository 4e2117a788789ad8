"""Outside text is data, never markup: the four notebooks run on a corpus, a golden set and another system's
answers full of HTML and Markdown injections (`<img src=x onerror=alert(1)>`, `<script>alert(1)</script>`,
`<svg onload=alert(1)>`, `[x](javascript:alert(1))`), in document text, file names, questions, ids, reference
answers and answers, through `axiom notebooks run 01 02 03 04` (one warm kernel, as the end-to-end fixture).

Every text/html output of the executed notebooks, every text/markdown output rendered as nbconvert renders it
(mistune) and as CommonMark does (markdown-it, like JupyterLab's marked), and report.html, must hold no live
tag, event handler or javascript: link: the payloads must appear as text only, and they must appear (the views
did show the hostile values)."""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.notebooks.conftest import ALL_NOTEBOOKS, write_test_config

IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(1)</script>"
SVG = "<svg onload=alert(1)>"
LINK = "[x](javascript:alert(1))"
HOSTILE_FILE = f"{IMG}.txt"  # a file name may hold all of it but "/"

DOCUMENT = (f"The lava of Kilauea {IMG} flows slowly into the sea at night. "
            f"The caldera map {LINK} is kept at the observatory on the rim. "
            f"Visitors hear the crater {SCRIPT} hiss before dawn.\n")
PLAIN = (
    "Honey bees dance to tell the hive where flowers are. The waggle dance encodes distance and direction.\n"
)
ITEMS = [
    {"id": "h01", "question": f"What does the lava of Kilauea {IMG} do at night?",
     "reference": f"It flows slowly into the sea {SCRIPT}.", "relevant_sources": [HOSTILE_FILE],
     "reference_contexts": [f"The lava of Kilauea {IMG} flows slowly into the sea at night."]},
    {"id": f"h02{SVG}", "question": f"Where is the caldera map {LINK} kept?",
     "reference": "At the observatory on the rim.", "relevant_sources": [HOSTILE_FILE]},
    {"id": "h03", "question": "What does the waggle dance of honey bees encode?",
     "reference": "Distance and direction.", "relevant_sources": ["plain.txt"]},
]


class _Markup(HTMLParser):
    """What a browser would make of an HTML text: the live parts (event handlers, javascript: URLs, scripts or
    images that are not the report's own charts) and the text shown."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.live: list[str] = []
        self.text: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in = tag
        values = {name: (value or "") for name, value in attrs}
        for name, value in values.items():
            url = "".join(value.split()).lower()
            if name.startswith("on") or "alert(1)" in value or url.startswith("javascript:"):
                self.live.append(f"<{tag} {name}={value!r}>")
        if tag in ("svg", "iframe", "object", "embed"):
            self.live.append(f"<{tag}>")
        if tag == "img" and not values.get("src", "").startswith("data:image/png;base64,"):
            self.live.append(f"<img {values}>")

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in in ("script", "style"):
            if "alert(1)" in data:
                self.live.append(f"<{self._in}>{data[:80]}")
        else:
            self.text.append(data)


def _read(markup: str) -> _Markup:
    parser = _Markup()
    parser.feed(markup)
    parser.close()
    return parser


def _rendered_markdown(text: str) -> list[str]:
    """A text/markdown output as nbconvert's report renders it (mistune) and as CommonMark does."""
    from markdown_it import MarkdownIt
    from nbconvert.filters.markdown import markdown2html_mistune

    return [markdown2html_mistune(text), MarkdownIt("commonmark").render(text)]


def _views(nb: Any) -> Iterator[tuple[str, str]]:
    """(what, HTML) for every text/html output and every rendering of every text/markdown output."""
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/html" in data:
                yield f"cell {i} text/html", data["text/html"]
            if "text/markdown" in data:
                raw = data["text/markdown"]
                for payload in (IMG, SCRIPT, SVG, LINK, "](javascript:"):
                    assert payload not in raw, f"cell {i}: {payload!r} unescaped in text/markdown:\n{raw}"
                for n, html in enumerate(_rendered_markdown(raw)):
                    yield f"cell {i} text/markdown (renderer {n})", html


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, clean_kernel_env: None,
            embedder: Any) -> dict[str, Any]:
    """A seed run whose answers (another system's, from a responses file) are injections, then the four
    notebooks on the hostile corpus and golden set: 04 compares the two runs."""
    from axiom.cli import main
    from axiom.config import load_settings
    from axiom.evaluation.runs import AnswerSource, EvaluationOptions, run_evaluation

    root = tmp_path_factory.mktemp("notebooks-hostile")
    config = write_test_config(root)
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / HOSTILE_FILE).write_text(DOCUMENT)
    (corpus / "plain.txt").write_text(PLAIN)
    dataset = root / "golden.jsonl"
    dataset.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    responses = root / "responses.jsonl"
    responses.write_text("".join(json.dumps({"id": item["id"], "answer": f"{SCRIPT} {LINK} {IMG}",
                                             "contexts": [SCRIPT], "retrieved": [f"{SVG}.txt"]}) + "\n"
                                 for item in ITEMS))
    settings = load_settings(config, environ={})
    run_evaluation(settings, dataset, AnswerSource.from_responses(responses, corpus=corpus),
                   EvaluationOptions(name="seed", judge=False, embedder=embedder, out_dir=root / "runs"))
    argv = ["--config", str(config), "notebooks", "run", *ALL_NOTEBOOKS, "-p", "corpus", str(corpus),
            "-p", "dataset", str(dataset), "-p", "chroma_path", str(root / "store"), "-p", "judge", "false",
            "--out", str(root / "runs"), "--name", "hostile"]
    text = io.StringIO()
    with contextlib.redirect_stdout(text), pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLM_PROVIDER", "extractive")
        code = main(argv)
    assert code == 0, text.getvalue()
    folder = Path(text.getvalue().strip().splitlines()[-1].removeprefix("run folder: "))
    return {"folder": folder}


@pytest.mark.timeout(900)
def test_notebook_outputs_show_injections_as_text(hostile: dict[str, Any]) -> None:
    shown: dict[str, str] = {}
    for name in ALL_NOTEBOOKS:
        nb = nbformat.read(hostile["folder"] / f"{name}.ipynb", as_version=4)
        texts = []
        for what, html in _views(nb):
            seen = _read(html)
            assert not seen.live, f"{name} {what}: live markup {seen.live}\n{html[:3000]}"
            texts.append("".join(seen.text))
        shown[name] = "\n".join(texts)
    # the views did show the hostile values, as text
    assert HOSTILE_FILE in shown["01_ingest"]  # the files table
    assert ITEMS[0]["question"] in shown["02_query"]  # the settings table and the answer view
    answer = next(c for c in nbformat.read(hostile["folder"] / "02_query.ipynb", as_version=4).cells
                  if "answer_markdown(answer)" in c.source).outputs[0]["data"]["text/markdown"]
    for html in _rendered_markdown(answer):
        text = "".join(_read(html).text)
        # question, answer, source
        assert ITEMS[0]["question"] in text and IMG in text and HOSTILE_FILE in text, text
    assert ITEMS[1]["question"] in shown["03_evaluate"] and ITEMS[1]["id"] in shown["03_evaluate"]
    assert SCRIPT in shown["04_compare_runs"] and LINK in shown["04_compare_runs"]  # the seed's answers


def test_html_report_shows_injections_as_text(hostile: dict[str, Any]) -> None:
    html = (hostile["folder"] / "report.html").read_text()
    seen = _read(html)
    assert not seen.live, seen.live
    text = "".join(seen.text)
    assert ITEMS[0]["question"] in text and ITEMS[1]["question"] in text and ITEMS[1]["id"] in text
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', html)) == 2  # the report's own charts


# -- fast checks of the pieces ---------------------------------------------------------------------------
ALL_PUNCTUATION = "".join(chr(c) for c in range(33, 127) if not chr(c).isalnum())


@pytest.mark.parametrize("payload", [IMG, SCRIPT, SVG, LINK, f"![i](http://example.com/x.png) <{LINK}>",
                                     "&lt;img&gt; &amp; $x$ **b** `c` \\<i>",
                                     "1. item\n# heading\n> quote\n---",
                                     ALL_PUNCTUATION, "www.example.com https://example.com/a_b"])
def test_markdown_text_renders_as_the_text_itself(payload: str) -> None:
    """Whatever a value holds, both renderers show exactly its characters (line breaks aside), in one
    paragraph."""
    from axiom.notebook.markup import markdown_text

    for html in _rendered_markdown(markdown_text(payload)):
        seen = _read(html)
        assert not seen.live, html
        assert (
            html.startswith("<p>") and html.count("<p>") == 1 and "<a " not in html and "<code>" not in html
        ), html
        assert " ".join("".join(seen.text).split()) == " ".join(payload.split()), html


def test_answer_view_escapes_every_value() -> None:
    from axiom.notebook.markup import answer_markdown
    from axiom.types import Answer, Citation

    answer = Answer(question=f"Why {IMG}?", answer=f"Because {SCRIPT} {LINK}.", generator=f"gen{SVG}",
                    citations=[Citation(n=1, source=f"{IMG}.md", page=3, chunk_id="c1", score=0.5)],
                    contexts=[],
                    degraded=True, degraded_reason=f"judge said {LINK}")
    markdown = answer_markdown(answer).data
    for html in _rendered_markdown(markdown):
        seen = _read(html)
        assert not seen.live, html
        text = "".join(seen.text)
        for value in (answer.question, answer.answer, answer.generator, f"{IMG}.md", answer.degraded_reason):
            assert value in text, (value, text)
        assert "<strong>Q:</strong>" in html and "<code>" in html  # the view's own markup stays


def test_the_checker_sees_live_markup() -> None:
    """The check the notebook tests rely on: a live tag, handler, script or javascript: link is seen; its
    escaped form is text."""
    for live in (IMG, SCRIPT, f"<p>{SVG}</p>", '<a href=" JavaScript:alert(1)">x</a>',
                 "<b onmouseover=x()>b</b>"):
        assert _read(live).live, live
    escaped = (
        "&lt;img src=x onerror=alert(1)&gt; &lt;script&gt;alert(1)&lt;/script&gt; [x](javascript:alert(1))"
    )
    seen = _read(f"<p>{escaped}</p>")
    assert not seen.live and "".join(seen.text) == f"{IMG} {SCRIPT} {LINK}"


def test_delta_chart_with_an_interval_that_misses_its_delta() -> None:
    """A bootstrap of a few questions can give an interval that does not hold the delta: no negative
    whisker."""
    from axiom import comparison_report
    from axiom.evaluation.run_documents import Comparison
    from tests.evaluation.helpers import verdict_entry

    metrics = {"chrf": verdict_entry(delta=0.2, ci=[0.25, 0.4], verdict="better"),
               "recall@5": verdict_entry(delta=-0.1, ci=[-0.3, -0.15], verdict="no detectable change")}
    comparison = Comparison(a="/runs/a", b="/runs/b", questions_a=5, questions_b=5, common_questions=5,
                            verdict="", noise_note=None, family={}, test="", config={}, metrics=metrics,
                            changed_most=[], unchanged_questions=0, differences=[], not_applicable={})
    fig = comparison_report.delta_chart([comparison])
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["chrf", "recall@5"]
