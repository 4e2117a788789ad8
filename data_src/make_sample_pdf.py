"""Build the sample-corpus PDF(s) in data/ from plain-text sources kept in data_src/.

Usage (from the repository root):

    python data_src/make_sample_pdf.py                       # every data_src/*.txt
    python data_src/make_sample_pdf.py lightvessels_and_automation

Source format (one paragraph per line, blank lines between paragraphs):

    # Title                  -> document title (large bold)
    ## Heading               -> section heading (bold)
    [pagebreak]              -> start a new page
    anything else            -> body paragraph

The text must be latin-1 encodable, because only the core PDF fonts (Helvetica) are used.
The output is deterministic: creation date and document id are fixed, so re-running the
script does not produce a spurious diff.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SRC_DIR = HERE
OUT_DIR = REPO / "data"

PAGEBREAK = "[pagebreak]"
FIXED_DATE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def parse_blocks(text: str) -> list[tuple[str, str]]:
    """Split source text into (kind, text) blocks: kind is title, heading, para or pagebreak."""
    blocks: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line == PAGEBREAK:
            blocks.append(("pagebreak", ""))
        elif line.startswith("## "):
            blocks.append(("heading", line[3:].strip()))
        elif line.startswith("# "):
            blocks.append(("title", line[2:].strip()))
        else:
            blocks.append(("para", line))
    return blocks


def build_pdf(src: Path, out: Path) -> int:
    """Render one source file to a PDF; returns the number of pages written."""
    text = src.read_text(encoding="utf-8")
    try:
        text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise SystemExit(f"{src}: text is not latin-1 encodable (core fonts only): {exc}") from exc

    blocks = parse_blocks(text)
    title = next((t for kind, t in blocks if kind == "title"), src.stem.replace("_", " ").title())

    pdf = FPDF(format="A4", unit="mm")
    pdf.set_title(title)
    pdf.set_author("Axiom Workbench sample corpus")
    pdf.set_creator("data_src/make_sample_pdf.py")
    pdf.set_creation_date(FIXED_DATE)
    pdf.file_id = lambda: ""  # no random /ID, keeps output byte-stable
    pdf.set_margins(left=22, top=22, right=22)
    pdf.set_auto_page_break(auto=True, margin=22)
    pdf.add_page()

    for kind, body in blocks:
        if kind == "pagebreak":
            pdf.add_page()
        elif kind == "title":
            pdf.set_font("Helvetica", style="B", size=17)
            pdf.multi_cell(0, 8, body, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(4)
        elif kind == "heading":
            pdf.ln(2)
            pdf.set_font("Helvetica", style="B", size=13)
            pdf.multi_cell(0, 7, body, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(1)
        else:
            pdf.set_font("Helvetica", size=11)
            pdf.multi_cell(0, 5.6, body, align="J", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(3)

    out.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(out))
    return pdf.page_no()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help="source names (data_src/<name>.txt); default: all")
    parser.add_argument(
        "--out-dir", type=Path, default=OUT_DIR, help="where to write the PDFs (default: data/)"
    )
    args = parser.parse_args(argv)

    if args.names:
        sources = [SRC_DIR / f"{name.removesuffix('.txt')}.txt" for name in args.names]
    else:
        sources = sorted(SRC_DIR.glob("*.txt"))
    if not sources:
        print("no sources found", file=sys.stderr)
        return 1
    for src in sources:
        if not src.is_file():
            print(f"missing source: {src}", file=sys.stderr)
            return 1
        out = args.out_dir / f"{src.stem}.pdf"
        pages = build_pdf(src, out)
        print(f"wrote {out} ({pages} pages)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
