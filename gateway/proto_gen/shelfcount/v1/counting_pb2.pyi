from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Photo(_message.Message):
    __slots__ = ("id", "image", "location", "session", "preview", "replaces", "part_of")
    ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    REPLACES_FIELD_NUMBER: _ClassVar[int]
    PART_OF_FIELD_NUMBER: _ClassVar[int]
    id: str
    image: bytes
    location: str
    session: str
    preview: bool
    replaces: str
    part_of: str
    def __init__(self, id: _Optional[str] = ..., image: _Optional[bytes] = ..., location: _Optional[str] = ..., session: _Optional[str] = ..., preview: _Optional[bool] = ..., replaces: _Optional[str] = ..., part_of: _Optional[str] = ...) -> None: ...

class Row(_message.Message):
    __slots__ = ("location", "sku", "product_description", "quantity_counted", "unit_price", "total_value", "condition", "expiration_date", "last_updated", "count_confidence")
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_COUNTED_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_VALUE_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    EXPIRATION_DATE_FIELD_NUMBER: _ClassVar[int]
    LAST_UPDATED_FIELD_NUMBER: _ClassVar[int]
    COUNT_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    location: str
    sku: str
    product_description: str
    quantity_counted: int
    unit_price: str
    total_value: str
    condition: str
    expiration_date: str
    last_updated: str
    count_confidence: float
    def __init__(self, location: _Optional[str] = ..., sku: _Optional[str] = ..., product_description: _Optional[str] = ..., quantity_counted: _Optional[int] = ..., unit_price: _Optional[str] = ..., total_value: _Optional[str] = ..., condition: _Optional[str] = ..., expiration_date: _Optional[str] = ..., last_updated: _Optional[str] = ..., count_confidence: _Optional[float] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x0", "y0", "x1", "y1", "score", "sku")
    X0_FIELD_NUMBER: _ClassVar[int]
    Y0_FIELD_NUMBER: _ClassVar[int]
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    x0: float
    y0: float
    x1: float
    y1: float
    score: float
    sku: str
    def __init__(self, x0: _Optional[float] = ..., y0: _Optional[float] = ..., x1: _Optional[float] = ..., y1: _Optional[float] = ..., score: _Optional[float] = ..., sku: _Optional[str] = ...) -> None: ...

class Code(_message.Message):
    __slots__ = ("format", "text", "gtin")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    GTIN_FIELD_NUMBER: _ClassVar[int]
    format: str
    text: str
    gtin: str
    def __init__(self, format: _Optional[str] = ..., text: _Optional[str] = ..., gtin: _Optional[str] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class CountResult(_message.Message):
    __slots__ = ("id", "count_id", "session", "rows", "boxes", "codes", "timings_ms", "width", "height", "error", "queued", "preview", "bay", "current", "superseded_by", "replaced", "bay_rows", "location_conflict", "model_version", "findings")
    class TimingsMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    BOXES_FIELD_NUMBER: _ClassVar[int]
    CODES_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_MS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    BAY_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDED_BY_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    BAY_ROWS_FIELD_NUMBER: _ClassVar[int]
    LOCATION_CONFLICT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    count_id: str
    session: str
    rows: _containers.RepeatedCompositeFieldContainer[Row]
    boxes: _containers.RepeatedCompositeFieldContainer[Box]
    codes: _containers.RepeatedCompositeFieldContainer[Code]
    timings_ms: _containers.ScalarMap[str, float]
    width: int
    height: int
    error: Error
    queued: bool
    preview: bool
    bay: str
    current: bool
    superseded_by: str
    replaced: _containers.RepeatedScalarFieldContainer[str]
    bay_rows: _containers.RepeatedCompositeFieldContainer[Row]
    location_conflict: LocationConflict
    model_version: str
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    def __init__(self, id: _Optional[str] = ..., count_id: _Optional[str] = ..., session: _Optional[str] = ..., rows: _Optional[_Iterable[_Union[Row, _Mapping]]] = ..., boxes: _Optional[_Iterable[_Union[Box, _Mapping]]] = ..., codes: _Optional[_Iterable[_Union[Code, _Mapping]]] = ..., timings_ms: _Optional[_Mapping[str, float]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., queued: _Optional[bool] = ..., preview: _Optional[bool] = ..., bay: _Optional[str] = ..., current: _Optional[bool] = ..., superseded_by: _Optional[str] = ..., replaced: _Optional[_Iterable[str]] = ..., bay_rows: _Optional[_Iterable[_Union[Row, _Mapping]]] = ..., location_conflict: _Optional[_Union[LocationConflict, _Mapping]] = ..., model_version: _Optional[str] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("type", "x0", "y0", "x1", "y1", "sku", "expected_sku", "confidence")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    X0_FIELD_NUMBER: _ClassVar[int]
    Y0_FIELD_NUMBER: _ClassVar[int]
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SKU_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    type: str
    x0: float
    y0: float
    x1: float
    y1: float
    sku: str
    expected_sku: str
    confidence: float
    def __init__(self, type: _Optional[str] = ..., x0: _Optional[float] = ..., y0: _Optional[float] = ..., x1: _Optional[float] = ..., y1: _Optional[float] = ..., sku: _Optional[str] = ..., expected_sku: _Optional[str] = ..., confidence: _Optional[float] = ...) -> None: ...

class LocationConflict(_message.Message):
    __slots__ = ("reason", "chosen", "read", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_FIELD_NUMBER: _ClassVar[int]
    READ_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    chosen: str
    read: str
    message: str
    def __init__(self, reason: _Optional[str] = ..., chosen: _Optional[str] = ..., read: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...
