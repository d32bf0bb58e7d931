"""Everything a PDF tells a reader, as text (not a test module): the pages' text, the document information
dictionary, the XMP metadata and the embedded files — what the redaction tests search."""

from __future__ import annotations

import io
import unicodedata

import pypdf


def page_text(pdf: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return unicodedata.normalize("NFC", "\n".join(page.extract_text() or "" for page in reader.pages))


def everything(pdf: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    parts = [page_text(pdf)]
    info = reader.metadata or {}
    parts += [f"{k}={v}" for k, v in info.items()]
    root = reader.trailer["/Root"]
    xmp = root.get("/Metadata")
    if xmp is not None:
        parts.append(xmp.get_object().get_data().decode("utf-8", "replace"))
    for name, contents in reader.attachments.items():
        parts.append(name)
        parts += [c.decode("utf-8", "replace") for c in contents]
    return unicodedata.normalize("NFC", "\n".join(parts))


def fold(text: str) -> str:
    """Lower case, no diacritics, no whitespace: a value found however it was typed or laid out."""
    base = "".join(c for c in unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
                   if not unicodedata.combining(c))
    return "".join(base.lower().split())
