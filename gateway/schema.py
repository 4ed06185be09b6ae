"""The one CSV schema every count row follows, shared by the CLI, the gateway and the sinks."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

COLUMNS: tuple[str, ...] = (
    "Location",
    "SKU",
    "Product_Description",
    "Quantity_Counted",
    "Unit_Price",
    "Total_Value",
    "Condition",
    "Expiration_Date",
    "Last_Updated",
    "Count_Confidence",
)

CONDITIONS: tuple[str, ...] = ("Good", "Damaged", "Expired", "Out of Stock")


def decimal_or_none(value: object) -> Decimal | None:
    """A cell's number (rows travel as JSON and CSV, so numbers may be text); None if absent
    or not a number."""
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


# -- messages at the edges ---------------------------------------------------------------------
# The shapes clients send and receive, declared once: the WebSocket, REST and gRPC edges
# validate with these models, and the OpenAPI document is generated from them. Values that
# depend on state (is the photo counted, is the SKU in the catalog) are the services' and the
# store's to check.

CLIENT_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,100}$"
MAX_LOCATION = 64  # a location's characters, everywhere it is sent
MAX_SKU = 100
MAX_QUANTITY = 1_000_000
MAX_LABEL = 64  # the hello's device label (stored with the session)

ClientId = Annotated[str, StringConstraints(pattern=CLIENT_ID_PATTERN)]
LocationText = Annotated[str, StringConstraints(max_length=MAX_LOCATION)]
SkuText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_SKU)]
ConditionName = Literal["Good", "Damaged", "Expired", "Out of Stock"]
SplitCondition = Literal["Damaged", "Expired", "Out of Stock"]
DATE_PATTERN = r"^(\d{4}-\d{2}-\d{2})?$"
DateText = Annotated[str, StringConstraints(strip_whitespace=True, pattern=DATE_PATTERN)]
_PATTERN_HINTS = {CLIENT_ID_PATTERN: "must be 1-100 letters, digits or ._:-",
                  DATE_PATTERN: "must be a date YYYY-MM-DD (or empty)"}


def _no_default(schema: dict[str, Any]) -> None:
    """Leave a field's null default out of its JSON schema (its enum does not list null)."""
    schema.pop("default", None)


class Message(BaseModel):
    """Base of every inbound message: unknown fields are ignored (older and newer clients
    send more than one version knows), known ones are checked strictly (no "3" for 3)."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


MAX_CROPS = 64  # code crops one photo may carry
MAX_CROP_BYTES = 512_000
MAX_SIDE = 20_000  # pixels along a full photo's side


class CropPart(Message):
    """One crop: where it lies in the full photo, and its JPEG's length in the binary."""

    box: list[int] = Field(min_length=4, max_length=4, description="x1, y1, x2, y2 in the "
                           "full photo's pixels")
    bytes: int = Field(ge=1, le=MAX_CROP_BYTES, description="its JPEG's bytes")


class PhotoCrops(Message):
    """Full-resolution crops of the codes sent beside a reduced photo: their JPEGs follow the
    photo's in the same binary message, in this order."""

    full: list[int] = Field(min_length=2, max_length=2,
                            description="the full photo's width and height")
    parts: list[CropPart] = Field(min_length=1, max_length=MAX_CROPS)

    @model_validator(mode="after")
    def _inside(self) -> PhotoCrops:
        w, h = self.full
        if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
            raise ValueError(f"full: width and height 1-{MAX_SIDE}")
        for part in self.parts:
            x1, y1, x2, y2 = part.box
            if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
                raise ValueError(f"crop box {list(part.box)} is not inside the {w}x{h} photo")
        return self

    @property
    def total_bytes(self) -> int:
        return sum(p.bytes for p in self.parts)


class PhotoHeader(Message):
    """What comes with a photo's bytes: the client's photo id (its idempotency key), the
    location the walker scanned, and how the photo relates to a bay."""

    id: ClientId | None = Field(None, description="the client's photo id (a UUID it chose); "
                                "re-sending it never counts the photo twice")
    location: LocationText | None = Field(None, description="the bin label the walker "
                                          "scanned, if any")
    preview: bool = Field(False, description="a live-preview frame: counted, never stored")
    replaces: ClientId | None = Field(None, description="photo id of the bay photo this "
                                      "retake replaces")
    part_of: ClientId | None = Field(None, description="bay id or photo id of the bay this "
                                     "photo is another part of")
    crops: PhotoCrops | None = Field(None, description="WebSocket only: the photo is a "
                                     "reduced one, and full-resolution crops of its codes "
                                     "follow its JPEG in the binary message")

    @model_validator(mode="after")
    def _one_link(self) -> PhotoHeader:
        if self.replaces is not None and self.part_of is not None:
            raise ValueError("a photo either replaces one or is part of a bay")
        return self


class Split(Message):
    """``n`` of the line's items are in another Condition (e.g. Damaged)."""

    quantity: int = Field(ge=0, le=MAX_QUANTITY)
    condition: SplitCondition


class Correction(Message):
    """A person's fix of one line: the quantity they counted, and optionally the location,
    Condition, expiry, a split by Condition, or the product it really is (``new_sku``; with
    ``sku`` "" the unidentified items are assigned to it)."""

    sku: SkuText
    quantity: int = Field(ge=0, le=MAX_QUANTITY)
    location: LocationText | None = None
    # Documented as the four names (null is accepted and means the same as left out).
    condition: Annotated[ConditionName | None, WithJsonSchema({"enum": list(CONDITIONS)})] = \
        Field(None, description="the line's Condition as the person saw it (e.g. Damaged); "
              "left out: kept", json_schema_extra=_no_default)
    new_sku: Annotated[SkuText, StringConstraints(min_length=1)] | None = None
    expiry: DateText | None = Field(None, description="a misread expiry fixed: YYYY-MM-DD, "
                                    "or empty to clear it")
    split: Split | None = None
    correction_id: ClientId | None = Field(None, description="client's id for this "
                                           "correction: re-sending it never records it twice "
                                           "(same as the Idempotency-Key header)")

    @model_validator(mode="after")
    def _consistent(self) -> Correction:
        if not self.sku and self.new_sku is None:
            raise ValueError('sku is required; "" with new_sku assigns the unidentified items')
        if self.new_sku is not None and self.new_sku == self.sku:
            raise ValueError("new_sku must be another SKU")
        if self.split is not None and self.new_sku is not None:
            raise ValueError("a line is either split or moved to another SKU")
        if self.split is not None and self.split.quantity > self.quantity:
            raise ValueError("split quantity must be 0 to the line's quantity")
        return self


MAX_BOXES = 2000  # item boxes one photo may carry (the detector keeps at most 200 a tile)
Coordinate = Annotated[float, Field(ge=0, allow_inf_nan=False)]


def _as_tuple(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value  # JSON has arrays, no tuples


ItemBox = Annotated[tuple[Coordinate, Coordinate, Coordinate, Coordinate, SkuText],
                    BeforeValidator(_as_tuple)]


class BoxCorrection(Message):
    """The complete corrected set of item boxes of one photo, ``[x0, y0, x1, y1, sku]`` in
    pixels of the stored photo (sku "" for an item nobody named); the line quantities become
    the number of boxes of each SKU."""

    boxes: list[ItemBox] = Field(max_length=MAX_BOXES)
    correction_id: ClientId | None = Field(None, description="client's id for this "
                                           "correction (as the Idempotency-Key header)")

    @model_validator(mode="after")
    def _proper_boxes(self) -> BoxCorrection:
        for i, (x0, y0, x1, y1, _sku) in enumerate(self.boxes):
            if x1 <= x0 or y1 <= y0:
                raise ValueError(f"box {i} must have x1 > x0 and y1 > y0")
        return self


class LocationAnswer(Message):
    """The walker's answer to a location conflict."""

    location: Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True,
                                               min_length=1, max_length=MAX_LOCATION)]
    new: bool = Field(False, description="true: record a location the catalog does not list")


class RecountRequest(Message):
    """A manager sends a bay back to be counted again, saying why."""

    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                           max_length=500)] = Field(
        description="why: the walker sees it on the bay")


class ReorderDecision(Message):
    """A manager approves a reorder suggestion (optionally for another quantity) or dismisses
    it, with an optional note."""

    quantity: int | None = Field(None, ge=1, le=10_000_000,
                                 description="approve: units to order instead of the suggested")
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = \
        Field(None, description="why (kept with the decision)")


# -- the WebSocket conversation (gateway/server/PROTOCOL.md) -------------------------------------

class Hello(Message):
    """The first message of a connection: who is speaking and which session it continues."""

    type: Literal["hello"]
    token: str | None = None
    session: str | None = Field(None, description="the session to continue; null: a new one")
    device: Annotated[str, StringConstraints(max_length=MAX_LABEL)] | None = None


class PhotoMessage(PhotoHeader):
    """A photo's header; its bytes follow as the next (binary) message."""

    type: Literal["photo"]
    id: ClientId


class CorrectMessage(Correction):
    type: Literal["correct"]
    id: ClientId


class LocationMessage(LocationAnswer):
    type: Literal["location"]
    id: ClientId


class BoxesMessage(BoxCorrection):
    type: Literal["boxes"]
    id: ClientId


class ConfirmMessage(Message):
    type: Literal["confirm"]
    id: ClientId


class PingMessage(Message):
    type: Literal["ping"]


ClientMessage = Annotated[Hello | PhotoMessage | CorrectMessage | LocationMessage
                          | BoxesMessage | ConfirmMessage | PingMessage,
                          Field(discriminator="type")]
CLIENT_MESSAGE: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
UNKNOWN_TYPE = ("union_tag_invalid", "union_tag_not_found")  # a ValidationError's types


class Row(BaseModel):
    """One count line in the CSV schema (as the gateway sends it)."""

    Location: str | None
    SKU: str
    Product_Description: str
    Quantity_Counted: int
    Unit_Price: str
    Total_Value: str
    Condition: ConditionName
    Expiration_Date: str
    Last_Updated: str
    Count_Confidence: float


class ApiErrorBody(BaseModel):
    """Every refusal: a stable code to act on and a sentence to show."""

    type: Literal["error"] = "error"
    id: str | None = Field(None, description="the photo id the error is about, if any")
    code: str = Field(examples=["unauthorized", "token_expired", "request_timeout",
                                "not_an_image", "too_large", "rate_limited",
                                "triton_unavailable", "not_ready", "already_confirmed",
                                "superseded", "location_conflict", "unknown_location"])
    message: str
    queued: bool | None = Field(None, description="true: the photo is stored and will be "
                                "counted when Triton is back")


class InvalidMessage(ValueError):
    """A message that fails its model, said in one line a client can show."""

    def __init__(self, error: ValidationError) -> None:
        super().__init__(describe(error))


def describe(error: ValidationError) -> str:
    """The first problem of a failed validation, as ``field: what is wrong``."""
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    text = first["msg"].removeprefix("Value error, ")
    if first["type"] == "string_pattern_mismatch":
        text = _PATTERN_HINTS.get(str(first.get("ctx", {}).get("pattern")), text)
    return f"{where}: {text}"[:300] if where else text[:300]


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: object) -> M:
    """``data`` (decoded JSON or form fields) as ``model``, else InvalidMessage."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidMessage(exc) from None


# -- what the gateway answers (documented in the OpenAPI; extra fields may be added) ----------

class Answer(BaseModel):
    """Base of outbound shapes: documented fields, more may come."""

    model_config = ConfigDict(extra="allow")


class LocationConflict(Answer):
    reason: Literal["mismatch", "unknown"]
    chosen: str | None = None
    read: str
    message: str


class BayFields(Answer):
    """How a photo sits in its bay (retakes and parts)."""

    bay: str | None = Field(None, description="the photo's bay id")
    current: bool = Field(True, description="false: replaced by a retake (or its bay was "
                          "confirmed before): not counted")
    superseded_by: str | None = None
    replaced: list[str] = []
    parts: list[str] = []
    bay_rows: list[Row] = Field([], description="the bay's lines, parts summed (what "
                                "confirm sends)")
    bay_confirmed: bool = False
    overlap_codes: list[str] = []
    location_conflict: LocationConflict | None = None


class CountResult(BayFields):
    """A counted photo: rows in the CSV schema and what a client draws over the picture."""

    type: Literal["result"]
    id: str = Field(description="the client's photo id")
    count_id: str
    session: str
    rows: list[Row]
    boxes: list[list[float | str]] = Field(description="[x0, y0, x1, y1, score, sku]")
    codes: list[dict[str, Any]]
    timings_ms: dict[str, float]
    width: int
    height: int
    confirmed: bool
    model_version: str | None = Field(None, description="the item detector version that "
                                      "produced the boxes (null: no detector)")


class StoredCount(BayFields):
    """A stored count: effective rows (corrections applied), the model's rows, and each
    correction with who and when."""

    id: str
    photo_id: str
    session: str
    status: Literal["queued", "processing", "waiting", "done", "failed"]
    rows: list[Row]
    model_rows: list[Row]
    corrections: list[dict[str, Any]]
    confirmed_at: str | None = None
    confirmed_by: str | None = None
    location_choice: str | None = Field(None, description="the walker's answer to a "
                                        "location conflict")
    model_version: str | None = None


class SessionView(Answer):
    id: str
    walker: str
    created_at: str
    confirmed_at: str | None = None
    counts: list[StoredCount] = []
    bays: list[dict[str, Any]] = Field([], description="one per bay: bay, location, photos "
                                       "(current), history (replaced), rows (parts summed), "
                                       "confirmed, location_conflict, overlap_codes")


class LocationEntry(Answer):
    location: str
    sku: str
    description: str


class LocationList(Answer):
    """The catalog's bin locations, sorted, each with the SKU that lives there."""

    locations: list[LocationEntry]
