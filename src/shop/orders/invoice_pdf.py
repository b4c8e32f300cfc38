"""Rendering an invoice as a small PDF, drawn straight on a reportlab canvas.

Why it looks like this (measured on a 3-line order with a Cyrillic customer name):
the platypus version took about 7 ms of CPU and weighed 44 KB, because it embedded two
DejaVu subsets (regular and bold) of about 19 KB each. Each subset carried the font's
license text (``name``), its hinting programs and, reportlab's default, the 95 ASCII
glyphs whether used or not. Now:

* Text that Windows-1252 can spell (almost every invoice in Latin scripts) is set in
  Helvetica and Helvetica-Bold, two of the fourteen standard PDF fonts that every reader
  has: nothing is embedded.
* Anything else (Cyrillic, Greek, ...) is set in one TrueType font, embedded as a subset of
  the characters used. The font is DejaVu Sans slimmed once per process with fontTools
  (no hinting, no layout tables, a two-entry name table: about 0.5 s), so a subset of a
  dozen glyphs costs about 2 KB. ``asciiReadable=False`` keeps reportlab from adding the
  ASCII range to it. Bold text in that font is drawn with a thin outline (text render
  mode 2) rather than embedding a second font.
* Streams are compressed but not ASCII85-encoded (``rl_config.useA85``, process-wide: the
  invoice is the only PDF the shop makes).
* No layout engine: the page is a handful of positioned strings and lines. Item names wrap
  in their column; the items table breaks across pages and repeats its header.

The text stays extractable (tests read it back with pypdf). Without DejaVu or fontTools the
invoice is still produced, in Helvetica only, and characters it cannot spell show as "?".
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from shop.schemas import money

__all__ = ["InvoiceDocument", "InvoiceLine", "prepare_fonts", "render_invoice_pdf"]

# reportlab wraps compressed streams in ASCII85 by default (a 7-bit-safe PDF, 25 % larger,
# encoded in pure Python): binary streams are what every reader and mailer handles today.
rl_config.useA85 = 0

logger = logging.getLogger("shop.invoices")


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    name: str
    quantity: int
    unit_price: Decimal

    @property
    def total(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(frozen=True, slots=True)
class InvoiceDocument:
    shop_name: str
    number: str
    issued_on: date
    order_id: int
    order_date: date
    customer_name: str
    customer_email: str
    lines: list[InvoiceLine]
    total: Decimal
    seller_address: str = ""
    currency: str = "EUR"


# --- fonts -------------------------------------------------------------------------------------

REGULAR = "Helvetica"
BOLD = "Helvetica-Bold"
UNICODE = "ShopUnicode"

_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
)

# Characters the standard fonts can show: reportlab sets them in WinAnsiEncoding (cp1252).
_WIN_ANSI = frozenset(bytes([code]).decode("cp1252", errors="ignore") for code in range(32, 256))


def _slim_font(path: Path) -> io.BytesIO:
    """The font with every glyph but without what a PDF subset does not need."""
    from fontTools import subset
    from fontTools.ttLib import TTFont as FontFile

    options = subset.Options()
    options.hinting = False
    options.layout_features = []
    options.name_IDs = [1, 2]
    options.name_languages = [0x409]
    options.notdef_outline = True
    options.glyph_names = False
    options.drop_tables += ["GPOS", "GSUB", "GDEF", "kern", "MATH", "BASE", "JSTF", "DSIG", "FFTM"]
    font = FontFile(str(path))
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=font.getBestCmap().keys())
    subsetter.subset(font)
    out = io.BytesIO()
    font.save(out)
    out.seek(0)
    out.name = f"{path.stem}-slim.ttf"
    return out


@functools.cache
def unicode_font() -> str | None:
    """Register the embedded font once per process; None when the system has none."""
    for candidate in _FONT_CANDIDATES:
        path = Path(candidate)
        if not path.exists():
            continue
        try:
            data = _slim_font(path)
        except ImportError:  # no fontTools: the whole font, bigger subsets but correct text
            data = io.BytesIO(path.read_bytes())
            logger.warning("fontTools is missing: invoices embed larger font subsets")
        pdfmetrics.registerFont(TTFont(UNICODE, data, asciiReadable=False))
        return UNICODE
    logger.warning("no Unicode font found: invoices show only Latin-1 text")
    return None


_font_lock = asyncio.Lock()


async def prepare_fonts() -> None:
    """Slim and register the font in a thread, once: about a second of CPU that must not
    block a worker's event loop (its heartbeats and other jobs) on its first invoice."""
    if unicode_font.cache_info().currsize:
        return
    async with _font_lock:
        if not unicode_font.cache_info().currsize:
            await asyncio.to_thread(unicode_font)


def _runs(text: str, font: str) -> Iterator[tuple[str, str, bool]]:
    """Split ``text`` into (string, font, outlined) runs: standard font where it can spell it."""
    unicode = unicode_font()
    start = 0
    latin = True
    for index, char in enumerate(text):
        fits = char in _WIN_ANSI
        if fits != latin and index > start:
            yield _run(text[start:index], font, latin, unicode)
            start = index
        latin = fits
    if start < len(text):
        yield _run(text[start:], font, latin, unicode)


def _run(text: str, font: str, latin: bool, unicode: str | None) -> tuple[str, str, bool]:
    if latin:
        return text, font, False
    if unicode is None:
        return "?" * len(text), font, False
    return text, unicode, font == BOLD


def width(text: str, font: str, size: float) -> float:
    return sum(float(pdfmetrics.stringWidth(run, face, size)) for run, face, _ in _runs(text, font))


def wrap(text: str, font: str, size: float, limit: float) -> list[str]:
    """Greedy word wrap; a word longer than the line is cut where it overflows."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if width(candidate, font, size) <= limit:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
        while width(current, font, size) > limit and len(current) > 1:
            cut = len(current) - 1
            while cut > 1 and width(current[:cut], font, size) > limit:
                cut -= 1
            lines.append(current[:cut])
            current = current[cut:]
    if current or not lines:
        lines.append(current)
    return lines


class _Page:
    """Positioned text on a canvas, each string split into standard and embedded font runs."""

    def __init__(self, canvas: Canvas) -> None:
        self.canvas = canvas

    def text(self, x: float, y: float, text: str, *, font: str = REGULAR, size: float = 10) -> None:
        out = self.canvas.beginText(x, y)
        for run, face, outlined in _runs(text, font):
            out.setFont(face, size)
            if outlined:
                self.canvas.setLineWidth(size * 0.04)
                out.setTextRenderMode(2)
            out.textOut(run)
            if outlined:
                out.setTextRenderMode(0)
        self.canvas.drawText(out)

    def right(
        self, x: float, y: float, text: str, *, font: str = REGULAR, size: float = 10
    ) -> None:
        self.text(x - width(text, font, size), y, text, font=font, size=size)


# --- layout ------------------------------------------------------------------------------------

PAGE_WIDTH, PAGE_HEIGHT = A4
LEFT = 18 * mm
RIGHT = PAGE_WIDTH - 18 * mm
TOP = PAGE_HEIGHT - 18 * mm
BOTTOM = 20 * mm
CONTENT = RIGHT - LEFT
LEADING = 13.0
PAD = 4.0
# Right edges of the quantity, unit price and line total columns; the item name fills the rest.
QUANTITY_X = LEFT + CONTENT * 0.66
PRICE_X = LEFT + CONTENT * 0.83
NAME_WIDTH = CONTENT * 0.52


def render_invoice_pdf(document: InvoiceDocument) -> bytes:
    """An A4 invoice; the items table breaks across pages and repeats its header on each."""
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, pageCompression=1)
    canvas.setTitle(f"Invoice {document.number}")
    canvas.setAuthor(document.shop_name)
    canvas.setCreator("shop")
    page = _Page(canvas)
    y = _draw_heading(page, document)
    y = _draw_table_header(page, y)
    page_number = 1
    for line in document.lines:
        names = wrap(line.name, REGULAR, 10, NAME_WIDTH)
        height = LEADING * len(names) + PAD
        if y - height < BOTTOM + LEADING:
            _draw_footer(page, document, page_number)
            canvas.showPage()
            page_number += 1
            y = _draw_table_header(page, TOP)
        baseline = y - LEADING + 2
        for offset, name in enumerate(names):
            page.text(LEFT + PAD, baseline - offset * LEADING, name)
        page.right(QUANTITY_X, baseline, str(line.quantity))
        page.right(PRICE_X, baseline, money(line.unit_price))
        page.right(RIGHT - PAD, baseline, money(line.total))
        y -= height
        canvas.setStrokeColor(colors.lightgrey)
        canvas.setLineWidth(0.25)
        canvas.line(LEFT, y, RIGHT, y)
    canvas.setStrokeColor(colors.black)
    canvas.setLineWidth(0.8)
    canvas.line(QUANTITY_X + PAD, y - 2, RIGHT, y - 2)
    baseline = y - LEADING - 1
    page.right(PRICE_X, baseline, "Total", font=BOLD)
    page.right(RIGHT - PAD, baseline, f"{money(document.total)} {document.currency}", font=BOLD)
    _draw_footer(page, document, page_number)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _draw_heading(page: _Page, document: InvoiceDocument) -> float:
    """Seller, invoice number, customer and dates; returns where the items table starts."""
    page.text(LEFT, TOP - 18, document.shop_name, font=BOLD, size=20)
    page.right(RIGHT, TOP - 16, f"Invoice {document.number}", font=BOLD, size=14)
    y = TOP - 34
    for address_line in wrap(document.seller_address, REGULAR, 9, CONTENT * 0.55):
        if address_line:
            page.text(LEFT, y, address_line, size=9)
            y -= 11
    y -= 8
    left = [
        ("Bill to", BOLD),
        (document.customer_name, REGULAR),
        (document.customer_email, REGULAR),
    ]
    right = [
        f"Invoice date: {document.issued_on.isoformat()}",
        f"Order: #{document.order_id}",
        f"Order date: {document.order_date.isoformat()}",
        f"Currency: {document.currency}",
    ]
    for row in range(max(len(left), len(right))):
        if row < len(left):
            text, font = left[row]
            page.text(LEFT, y, text, font=font)
        if row < len(right):
            page.right(RIGHT, y, right[row])
        y -= LEADING
    return float(y - 10 * mm + LEADING)


def _draw_table_header(page: _Page, y: float) -> float:
    canvas = page.canvas
    canvas.setFillColor(colors.whitesmoke)
    canvas.rect(LEFT, y - LEADING - PAD, CONTENT, LEADING + PAD, stroke=0, fill=1)
    canvas.setFillColor(colors.black)
    baseline = y - LEADING + 2
    page.text(LEFT + PAD, baseline, "Item", font=BOLD)
    page.right(QUANTITY_X, baseline, "Quantity", font=BOLD)
    page.right(PRICE_X, baseline, "Unit price", font=BOLD)
    page.right(RIGHT - PAD, baseline, "Line total", font=BOLD)
    y -= LEADING + PAD
    canvas.setStrokeColor(colors.black)
    canvas.setLineWidth(0.8)
    canvas.line(LEFT, y, RIGHT, y)
    return y


def _draw_footer(page: _Page, document: InvoiceDocument, number: int) -> None:
    page.text(LEFT, 10 * mm, f"{document.shop_name} - invoice {document.number}", size=8)
    page.right(RIGHT, 10 * mm, f"Page {number}", size=8)
