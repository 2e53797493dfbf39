"""How the PDF, HTML and DOCX readers were chosen: speed and text quality of candidate libraries
on real files, each scored against a reference text of the same document.

    python -m venv /tmp/readers && /tmp/readers/bin/pip install pypdf pdfminer.six pypdfium2 pymupdf \\
        pdfplumber trafilatura resiliparse selectolax beautifulsoup4 lxml inscriptis python-docx docx2txt -e .
    apt-get install libtasn1-doc shared-mime-info valgrind nodejs-doc npm libxslt1-dev libreoffice-writer-nogui
    /tmp/readers/bin/python benchmarks/readers.py            # writes results/readers/

Not part of `ctxopt bench`: the candidates are not ctxopt's dependencies (only the chosen ones are,
in the `docs` extra). The files are real documents that Debian packages install (manuals typeset
by pdfTeX, DocBook, gtk-doc, Node.js and npm docs, a table-layout site), the Rust book and API
pages that rustup installs, and two of those HTML pages turned into DOCX and PDF by LibreOffice,
as an office would. A file that is missing here is left out and the output says so.

References: a PDF is scored against the same manual's text in another format (the Info file of
the libtasn1 manual, the HTML of the shared-mime-info spec) or, for LibreOffice's files, against
LibreOffice's own plain-text export of the document; an HTML page against the text of its main
content element (chosen by hand per site), so text from navigation, menus and footers counts
against precision. Scores are bag-of-words precision/recall/F1 (words lower-cased, Unicode NFKC
applied to every output as ctxopt's reader does), bigram F1 for reading order, and "glued" words
per 1,000 (two reference words printed without the space between them). Time is the best of 3.
"""

from __future__ import annotations

import collections
import gzip
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "results" / "readers"
RUST = Path.home() / ".rustup/toolchains/stable-x86_64-unknown-linux-gnu/share/doc/rust/html"

HTML_PAGES = {  # name: (file, XPath of the main content, what kind of page)
    "node-events": ("/usr/share/doc/nodejs/api/events.html", "//div[@id='apicontent']", "Node.js API docs"),
    "npm-install": ("/usr/lib/node_modules/npm/docs/output/commands/npm-install.html",
                    "//header[@class='title'] | //div[@id='_content']", "npm CLI docs"),
    "valgrind-core": ("/usr/share/doc/valgrind/html/manual-core.html", "//div[@class='chapter']", "DocBook manual"),
    "mime-spec": ("/usr/share/doc/shared-mime-info/shared-mime-info-spec.html/x34.html", "//div[@class='sect1']",
                  "DocBook spec"),
    "libtasn1-api": ("/usr/share/doc/libtasn1-doc/reference/libtasn1-libtasn1.html", "//div[@class='refentry']",
                     "gtk-doc API"),
    "libxslt-extensions": ("/usr/share/doc/libxslt1-dev/html/extensions.html",
                           "//td[@valign='top' and not(@width)][.//h2 or .//p][last()]", "table layout, left menu"),
    "rust-book": (str(RUST / "book/ch21-02-multithreaded.html"), "//main", "mdBook chapter, sidebar"),
    "rustdoc-read": (str(RUST / "std/fs/fn.read_to_string.html"), "//section[@id='main-content']", "rustdoc page"),
}
TEX_PDFS = {  # name: (PDF, reference loader)
    "libtasn1-manual": ("/usr/share/doc/libtasn1-doc/libtasn1.pdf", "info:/usr/share/info/libtasn1.info.gz"),
    "mime-spec": ("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf",
                  "html:/usr/share/doc/shared-mime-info/shared-mime-info-spec.html"),
}
OFFICE_SOURCES = ("valgrind-core", "node-events")  # HTML pages LibreOffice turns into DOCX, then PDF


# -- references and scores ---------------------------------------------------------------------

def words(text: str) -> list[str]:
    return re.findall(r"\w+", unicodedata.normalize("NFKC", text).lower())


def score(output: str, reference: str) -> dict[str, float]:
    out, ref = words(output), words(reference)
    o, r = collections.Counter(out), collections.Counter(ref)
    overlap = sum((o & r).values())
    p, rc = overlap / max(1, len(out)), overlap / max(1, len(ref))
    ob, rb = collections.Counter(itertools.pairwise(out)), collections.Counter(itertools.pairwise(ref))
    bo = sum((ob & rb).values())
    bp, br = bo / max(1, sum(ob.values())), bo / max(1, sum(rb.values()))
    vocab = set(ref)
    glued = sum(1 for w in out if w not in vocab and any(
        w[:i] in vocab and w[i:] in vocab for i in range(2, len(w) - 1)))
    hyphenated = ref_text(reference)  # a compound the reference itself hyphenates is not broken
    broken = sum(1 for a, b in _BROKEN.findall(output) if (a + b).lower() in vocab and f"{a}-{b}".lower() not in hyphenated)
    return {"precision": p, "recall": rc, "f1": 2 * p * rc / (p + rc) if p + rc else 0.0,
            "bigram_f1": 2 * bp * br / (bp + br) if bp + br else 0.0, "glued_per_1k": 1000 * glued / max(1, len(out)),
            "broken_per_1k": 1000 * broken / max(1, len(out)), "tokens_per_word": tokens(output) / max(1, len(ref)),
            "words": len(out)}


# a word cut at a line end, by a hyphen left in ("manip-\nulation") or PDFium's marker ("manip\x02ulation")
_BROKEN = re.compile(r"(\w+)(?:-[ \t]*\r?\n[ \t]*|\x02)(\w+)")


def ref_text(reference: str) -> str:
    return unicodedata.normalize("NFKC", reference).lower()


def tokens(text: str) -> int:
    """cl100k tokens: what the text costs in a prompt (dot leaders and page furniture cost too)."""
    from ctxopt.tokens import get_tokenizer

    return get_tokenizer().count(text)


def main_text(file: str, xpath: str) -> str:
    import lxml.html

    root = lxml.html.parse(file).getroot()
    for bad in root.xpath("//script | //style"):
        bad.getparent().remove(bad)
    return "\n".join(e.text_content() for e in root.xpath(xpath))


def reference(spec: str) -> str:
    kind, path = spec.split(":", 1)
    if kind == "info":  # drop Info's node headers and menu markers; the prose is the manual's
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as info:
            text = info.read()
        return "\n".join(line for line in text.splitlines()
                         if not line.startswith(("File:", "\x1f", "Tag Table", "Node:", "End Tag Table")))
    return "\n".join(main_text(str(p), "//body") for p in sorted(Path(path).glob("*.html")))


# -- candidates ---------------------------------------------------------------------------------

def pdf_pypdf(path: str) -> str:
    import pypdf

    return "\n".join(page.extract_text() or "" for page in pypdf.PdfReader(path).pages)


def pdf_pdfminer(path: str) -> str:
    from pdfminer.high_level import extract_text

    return extract_text(path)


def pdf_pypdfium2(path: str) -> str:
    import pypdfium2

    pdf = pypdfium2.PdfDocument(path)
    try:
        return "\n".join(pdf[i].get_textpage().get_text_bounded() for i in range(len(pdf)))
    finally:
        pdf.close()


def pdf_pymupdf(path: str) -> str:
    import pymupdf

    with pymupdf.open(path) as doc:
        return "\n".join(page.get_text() for page in doc)


def pdf_pdfplumber(path: str) -> str:
    import pdfplumber

    with pdfplumber.open(path) as pdf:
        return "\n".join(page.extract_text() or "" for page in pdf.pages)


def pdf_ctxopt(path: str) -> str:
    from ctxopt.ingest.formats import pdf

    return pdf.read(Path(path))[1]


def html_trafilatura(html: str) -> str:
    import trafilatura

    return trafilatura.extract(html, include_tables=True, include_comments=False) or ""


def html_trafilatura_recall(html: str) -> str:
    import trafilatura

    return trafilatura.extract(html, include_tables=True, include_comments=False, favor_recall=True) or ""


def html_resiliparse_main(html: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(html, main_content=True)


def html_resiliparse_all(html: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(html, main_content=False)


def html_inscriptis(html: str) -> str:
    import inscriptis

    return inscriptis.get_text(html)


def html_bs4_all(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    return soup.get_text("\n")


def html_selectolax_all(html: str) -> str:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    for node in tree.css("script, style, noscript, template"):
        node.decompose()
    return tree.body.text(separator="\n") if tree.body else ""


def html_ctxopt(html: str) -> str:
    from ctxopt.ingest.formats.html import html_text

    return html_text(html)[1]


def docx_python_docx(path: str) -> str:
    import docx

    document = docx.Document(path)
    parts = [p.text for p in document.paragraphs]
    parts += [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    return "\n".join(parts)


def docx_docx2txt(path: str) -> str:
    import docx2txt

    return docx2txt.process(path)


def docx_ctxopt(path: str) -> str:
    from ctxopt.ingest.formats import docx

    return docx.read(Path(path))[1]


PDF_READERS: dict[str, Callable[[str], str]] = {
    "pypdf": pdf_pypdf, "pdfminer.six": pdf_pdfminer, "pypdfium2": pdf_pypdfium2, "pymupdf": pdf_pymupdf,
    "pdfplumber": pdf_pdfplumber, "ctxopt (pypdfium2 + clean-up)": pdf_ctxopt}
HTML_READERS: dict[str, Callable[[str], str]] = {
    "trafilatura": html_trafilatura, "trafilatura favor_recall": html_trafilatura_recall,
    "resiliparse main_content": html_resiliparse_main, "resiliparse all text": html_resiliparse_all,
    "inscriptis (all text)": html_inscriptis, "BeautifulSoup+lxml (all text)": html_bs4_all,
    "selectolax (all text)": html_selectolax_all, "ctxopt (selectolax + rules)": html_ctxopt}
DOCX_READERS: dict[str, Callable[[str], str]] = {
    "python-docx": docx_python_docx, "docx2txt": docx_docx2txt, "ctxopt (stdlib zip + XML)": docx_ctxopt}
PACKAGES = ("pypdf", "pdfminer.six", "pypdfium2", "pymupdf", "pdfplumber", "trafilatura", "resiliparse", "selectolax",
            "beautifulsoup4", "lxml", "inscriptis", "python-docx", "docx2txt")


METRICS = ("precision", "recall", "f1", "bigram_f1", "glued_per_1k", "broken_per_1k", "tokens_per_word")


def timed(fn: Callable[[str], str], arg: str, repeat: int = 3) -> tuple[str, float]:
    best, out = float("inf"), ""
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(arg)
        best = min(best, time.perf_counter() - start)
    return out, best


def run_group(readers: dict[str, Callable[[str], str]], files: dict[str, tuple[str, str]], load: Callable[[str], str],
              pages: Callable[[str], int]) -> dict[str, dict]:
    """Each reader on each file: scores against the file's reference, and seconds."""
    results: dict[str, dict] = {}
    for name, fn in readers.items():
        per_file, total = {}, 0.0
        for label, (file, ref) in files.items():
            try:
                out, seconds = timed(fn, load(file))
            except Exception as exc:  # noqa: BLE001 - a candidate failing on a real file is a result to report
                per_file[label] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
                continue
            per_file[label] = {**score(out, ref), "seconds": seconds}
            total += seconds
        scored = [v for v in per_file.values() if "error" not in v]
        n_pages = sum(pages(f) for f, _ in files.values())
        means = {k: sum(v[k] for v in scored) / len(scored) for k in METRICS} if scored else {}
        results[name] = {"files": per_file, "seconds": total, "pages": n_pages, **means}
        print(f"{name:<34} F1 {results[name].get('f1', 0):.3f}  bigram {results[name].get('bigram_f1', 0):.3f}  "
              f"{total:.2f}s", flush=True)
    return results


def office_files(work: Path) -> dict[str, tuple[str, str]]:
    """DOCX (and their PDFs) made by LibreOffice from real HTML pages, with LibreOffice's text export."""
    soffice = shutil.which("soffice")
    out: dict[str, tuple[str, str]] = {}
    if soffice is None:
        print("soffice not found: the LibreOffice DOCX/PDF files are left out")
        return out
    for label in OFFICE_SOURCES:
        source = Path(HTML_PAGES[label][0])
        if not source.exists():
            continue
        shutil.copy(source, work / f"{label}.html")
        for target in ("docx:MS Word 2007 XML", "pdf", "txt:Text (encoded):UTF8"):
            src = work / (f"{label}.html" if target.startswith("docx") else f"{label}.docx")
            subprocess.run([soffice, "--headless", "--convert-to", target, "--outdir", str(work), str(src)],
                           check=True, capture_output=True)
        out[label] = (str(work / f"{label}.docx"), (work / f"{label}.txt").read_text(encoding="utf-8-sig"))
    return out


def pdf_pages(path: str) -> int:
    import pypdfium2

    pdf = pypdfium2.PdfDocument(path)
    try:
        return len(pdf)
    finally:
        pdf.close()


def markdown(report: dict) -> str:
    lines = ["# Reader selection: speed and text quality on real files", "",
             f"Measured {report['date']} on {report['machine']} (load average {report['load']}); "
             "reproduce with `benchmarks/readers.py` (its docstring lists the packages).", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v) + ".", "",
             "Scores are means over the files; time is the best of 3 runs per file, summed.", ""]
    for group, unit in (("pdf", "pages/s"), ("html", "pages/s"), ("docx", "files/s")):
        if group not in report:
            continue
        lines += [f"## {group.upper()}: {', '.join(report['files'][group])}", "",
                  f"| reader | precision | recall | F1 | bigram F1 | glued words / 1k | broken words / 1k | "
                  f"tokens per reference word | {unit} |", "|---|---|---|---|---|---|---|---|---|"]
        for name, r in report[group].items():
            if "f1" not in r:
                lines.append(f"| {name} | failed: {next(iter(r['files'].values()))} | | | | | | | |")
                continue
            rate = r["pages"] / r["seconds"] if r["seconds"] else float("inf")
            lines.append(f"| {name} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['bigram_f1']:.3f} | "
                         f"{r['glued_per_1k']:.1f} | {r['broken_per_1k']:.1f} | {r['tokens_per_word']:.2f} | {rate:,.1f} |")
        lines.append("")
        files = report[group]
        labels = list(report["files"][group])
        lines += ["Per file (F1 / bigram F1):", "", "| reader | " + " | ".join(labels) + " |",
                  "|---|" + "---|" * len(labels)]
        for name, r in files.items():
            cells = [(f"{r['files'][lb]['f1']:.2f} / {r['files'][lb]['bigram_f1']:.2f}" if "f1" in r["files"].get(lb, {})
                      else "error") for lb in labels]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    report: dict = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                    "load": " ".join(f"{x:.2f}" for x in os.getloadavg()), "versions": versions, "files": {}}
    with tempfile.TemporaryDirectory() as tmp:
        office = office_files(Path(tmp))
        pdfs = {k: (f, reference(r)) for k, (f, r) in TEX_PDFS.items() if Path(f).exists()}
        pdfs |= {f"{k} (LibreOffice)": (str(Path(f).with_suffix(".pdf")), ref) for k, (f, ref) in office.items()}
        html = {k: (f, main_text(f, x)) for k, (f, x, _) in HTML_PAGES.items() if Path(f).exists()}
        missing = [f for f, _ in TEX_PDFS.values() if not Path(f).exists()] + \
                  [f for f, _, _ in HTML_PAGES.values() if not Path(f).exists()]
        report["missing"] = missing
        report["files"] = {"pdf": {k: pdf_pages(f) for k, (f, _) in pdfs.items()},
                           "html": {k: HTML_PAGES[k][2] for k in html},
                           "docx": dict.fromkeys(office, "LibreOffice DOCX")}
        print(f"PDF: {sum(report['files']['pdf'].values())} pages in {len(pdfs)} files")
        report["pdf"] = run_group({k: v for k, v in PDF_READERS.items() if _installed(k)}, pdfs, str, pdf_pages)
        print(f"HTML: {len(html)} pages")
        report["html"] = run_group({k: v for k, v in HTML_READERS.items() if _installed(k)}, html,
                                   lambda f: Path(f).read_text(encoding="utf-8", errors="replace"), lambda f: 1)
        if office:
            print(f"DOCX: {len(office)} files")
            report["docx"] = run_group({k: v for k, v in DOCX_READERS.items() if _installed(k)}, office, str,
                                       lambda f: 1)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "readers.json").write_text(json.dumps(report, indent=2) + "\n")
    (OUT / "readers.md").write_text(markdown(report) + "\n")
    print(f"wrote {OUT / 'readers.md'}")


def _installed(reader: str) -> bool:
    module = {"pypdf": "pypdf", "pdfminer.six": "pdfminer", "pypdfium2": "pypdfium2", "pymupdf": "pymupdf",
              "pdfplumber": "pdfplumber", "python-docx": "docx", "docx2txt": "docx2txt", "inscriptis": "inscriptis"}
    name = next((m for k, m in module.items() if reader.startswith(k)), None) or reader.split()[0].lower()
    name = {"beautifulsoup+lxml": "bs4", "ctxopt": "ctxopt"}.get(name, name)
    try:
        __import__(name)
    except ImportError:
        print(f"{reader}: not installed, left out")
        return False
    return True


if __name__ == "__main__":
    main()
