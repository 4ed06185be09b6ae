"""Plain data passed between pipeline stages.

Boxes are always ``(x0, y0, x1, y1)`` in pixels of the decoded (EXIF-rotated) photo, so every
stage and every client draws them on the same picture.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Box = tuple[float, float, float, float]


class PipelineError(Exception):
    """A photo the pipeline refuses, with a stable machine-readable code.

    ``code`` is what clients switch on (e.g. ``not_an_image``, ``too_large``); ``message`` is
    one human line. Never carries a traceback to the user.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Linear symbologies (one dimension: a read can come from a single scan line).
LINEAR_FORMATS = frozenset({
    "EAN-13", "EAN-8", "UPC-A", "UPC-E", "Code128", "GS1-128", "Code39", "Code39Ext",
    "Code32", "PZN", "Code93", "ITF", "DataBar", "DataBarExpanded", "DataBarLimited",
})  # fmt: skip
SLIVER_RATIO = 0.1


@dataclass(frozen=True)
class Code:
    """One decoded barcode / 2D code."""

    format: str  # e.g. "EAN-13", "UPC-A", "Code128", "DataMatrix", "QRCode"
    text: str  # GS1: bracketed HRI form "(01)...(17)..."
    box: Box
    engine: str  # "zxing" or "zbar"
    gtin: str | None = None  # GTIN-14, zero-padded, when the code carries one
    ai: dict[str, str] = field(default_factory=dict)  # GS1 application identifiers

    @property
    def easily_misread(self) -> bool:
        """Whether this read needs its content confirmed (e.g. by the catalog) to be trusted.

        Three kinds of read pass the check digit yet include misreads (one in ten wrong digit
        patterns passes a mod-10 check): a linear code read along one scan line only (its box
        a sliver: bars too fine to resolve); UPC-E, whose short pattern also matches fragments
        of EAN-13 symbols cut by the photo's edge or by glare; and a read by zbar alone, which
        at about one pixel per bar stitches scan lines across neighbouring symbols into a
        valid-looking number (zxing, checking quiet zones and guards, did not confirm it).
        """
        width, height = self.box[2] - self.box[0], self.box[3] - self.box[1]
        sliver = self.format in LINEAR_FORMATS and height < SLIVER_RATIO * width
        return sliver or self.format == "UPC-E" or self.engine == "zbar"


@dataclass(frozen=True)
class TextLine:
    """One recognised text line from OCR."""

    text: str
    score: float
    box: Box


@dataclass(frozen=True)
class Detection:
    """One item (carton / box / bottle facing) found by the item detector."""

    box: Box
    score: float


@dataclass
class CountResult:
    """What a counted photo yields: rows in the CSV schema plus what a client draws."""

    rows: list[dict[str, object]]
    boxes: list[list[object]]  # [x0, y0, x1, y1, score, sku]
    codes: list[dict[str, object]]
    timings_ms: dict[str, float]
    width: int = 0
    height: int = 0
    # Where the rows' Location came from (code / ocr / session / none) and whether the
    # catalog knows it (None: the catalog lists no locations): the gateway asks the walker
    # when a read label disagrees with the chosen location or names an unknown bin.
    location_source: str = "none"
    location_known: bool | None = None
    box_sources: list[str] | None = None  # per box: own / neighbour / home / unknown
    model_version: str | None = None  # the item detector version that answered (Triton's)
    # Shelf audit (gateway.pipeline.audit): gap / misplaced / missing / extra, photo pixels.
    findings: list[dict[str, object]] = field(default_factory=list)
    # Faces found to blur in the kept photo ([x0, y0, x1, y1, score]; gateway.pipeline.privacy)
    people: list[list[float | str]] = field(default_factory=list)  # privacy.find_people

    def to_json(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "boxes": self.boxes,
            "codes": self.codes,
            "timings_ms": self.timings_ms,
            "width": self.width,
            "height": self.height,
            "location_source": self.location_source,
            "location_known": self.location_known,
            "box_sources": self.box_sources or [],
            "model_version": self.model_version,
            "findings": self.findings,
            "people": self.people,
        }
