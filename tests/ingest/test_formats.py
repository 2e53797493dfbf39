"""The PDF, HTML and DOCX readers on real files.

handbook.pdf and handbook.docx were made by LibreOffice from handbook.fodt (make_fixtures.sh in
the fixtures folder): three pages, each with a running header and a page-number footer, and a
table. returns.html is a help-center page with the usual chrome around its article: a header with
navigation and search, a sidebar, breadcrumbs, permalinks, a feedback widget, a related-articles
aside, a footer and a cookie banner. A scan is made in the test by PDFium from a rendered page.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from ctxopt.cli import main
from ctxopt.embed import CachedEmbedder, HashEmbedder
from ctxopt.errors import ConfigError, InputError
from ctxopt.ingest import read_documents
from ctxopt.ingest.formats import read_file
from ctxopt.kb import KnowledgeBase
from ctxopt.stores import QdrantStore

FIXTURES = Path(__file__).parents[1] / "fixtures" / "docs"
PDF, DOCX, HTML = FIXTURES / "handbook.pdf", FIXTURES / "handbook.docx", FIXTURES / "returns.html"


def test_a_pdf_is_read_with_its_title_and_without_its_running_header_and_footer():
    title, text = read_file(PDF)
    assert title == "ACME Support Handbook"
    assert text.startswith("Refunds\nRefunds are paid to the original payment method")
    assert "Restocking fee 10% on opened items" in text and text.rstrip().endswith("defective unit is received.")
    assert "edition 2026" not in text and "Page " not in text  # on every page: furniture, not content
    assert text.index("Refunds") < text.index("Shipping") < text.index("Warranty")


def test_a_docx_keeps_paragraphs_and_table_rows_in_document_order():
    title, text = read_file(DOCX)
    assert title == "ACME Support Handbook"
    lines = text.splitlines()
    assert lines[:2] == ["Refunds", "Refunds are paid to the original payment method within five business days of the "
                                    "day the returned item reaches our warehouse."]
    table = lines.index("Restocking fee | 10% on opened items")
    assert lines[table - 1] == "Fee | Amount" and lines.index("Shipping") > table  # the table where it stands


def test_an_html_page_keeps_its_article_and_drops_the_site_around_it():
    title, text = read_file(HTML)
    assert title == "How do returns work? | ACME Help Center"
    assert text.startswith("How do returns work?\n")
    assert "within thirty days of delivery, as long as it is unused and in its original box." in text  # one line
    assert "Restocking fee | 10% on opened items" in text
    assert "Order number format:\n    ACME-2026-000123" in text  # <pre> keeps its lines and indentation
    chrome = ["Skip to main content", "Careers", "Search the help center", "Tracking a parcel", "Help Center\n",
              "¶", "Related articles", "All rights reserved", "cookies", "gtag", "position: fixed"]
    assert [c for c in chrome if c in text] == []


def test_pdf_html_and_docx_files_in_a_folder_are_ingested_and_found(tmp_path):
    folder = tmp_path / "kb"
    folder.mkdir()
    for file in (PDF, DOCX, HTML):
        shutil.copy(file, folder / file.name)
    kb = KnowledgeBase("help", store=QdrantStore(), embedder=CachedEmbedder(HashEmbedder(), backend="none"))
    summary = kb.ingest(read_documents(folder), progress=False)
    assert summary.docs_added == 3
    hits = kb.search("restocking fee for opened items", mode="keyword", k=10, group_by_doc=True)
    assert {h.doc_id for h in hits} == {"handbook.pdf", "handbook.docx", "returns.html"}
    assert {h.payload["source"] for h in hits} == {"handbook.pdf", "handbook.docx", "returns.html"}
    assert kb.search("careers pricing blog cookies", mode="keyword") == []  # the page's chrome is not indexed


def test_a_password_protected_pdf_is_an_error_saying_so():
    with pytest.raises(InputError, match=r"handbook-protected\.pdf.*password-protected"):
        read_file(FIXTURES / "handbook-protected.pdf")


def test_a_damaged_pdf_is_an_error_naming_the_file(tmp_path):
    damaged = tmp_path / "cut.pdf"
    damaged.write_bytes(PDF.read_bytes()[:2000])
    with pytest.raises(InputError, match=r"cut\.pdf.*not a readable PDF"):
        read_file(damaged)


def test_a_scanned_pdf_is_an_error_saying_to_run_ocr_never_an_empty_document(tmp_path):
    import pypdfium2 as pdfium

    page = pdfium.PdfDocument(str(PDF))[0]
    width, height = page.get_size()
    scan = pdfium.PdfDocument.new()
    image = pdfium.PdfImage.new(scan)
    image.set_bitmap(page.render(scale=1))
    image.set_matrix(pdfium.PdfMatrix().scale(width, height))
    new_page = scan.new_page(width, height)
    new_page.insert_obj(image)
    new_page.gen_content()
    scan.save(str(tmp_path / "scan.pdf"))
    with pytest.raises(InputError, match=r"scan\.pdf.*no text layer.*OCR"):
        list(read_documents(tmp_path))


def test_a_docx_that_is_not_a_zip_is_an_error_naming_the_file(tmp_path):
    fake = tmp_path / "notes.docx"
    fake.write_text("not a zip")
    with pytest.raises(InputError, match=r"notes\.docx.*not a readable DOCX"):
        read_file(fake)


def test_html_without_a_declared_charset_that_is_not_utf8_is_read_as_windows_1252(tmp_path):
    page = tmp_path / "old.html"
    page.write_bytes("<p>Caf\u00e9 au lait \u2013 \u20ac3</p>".encode("cp1252"))
    assert read_file(page)[1] == "Caf\u00e9 au lait \u2013 \u20ac3"


@pytest.mark.parametrize("module, file", [("pypdfium2", PDF), ("selectolax.lexbor", HTML)])
def test_a_missing_reader_library_is_an_error_naming_the_extra(monkeypatch, capsys, tmp_path, module, file):
    monkeypatch.setitem(sys.modules, module, None)  # as if the docs extra were not installed
    with pytest.raises(ConfigError, match=r'ctxopt\[docs\]'):
        read_file(file)
    assert main(["ingest", str(file), "--path", str(tmp_path / "kb"), "--cache", "none", "--no-progress"]) == 2
    assert "ctxopt[docs]" in capsys.readouterr().err
