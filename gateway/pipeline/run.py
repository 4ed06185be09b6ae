"""The pipeline: photo bytes in, count rows out, one stage after another.

decode -> codes (zxing-cpp + pyzbar) and, at the same time, the item detector in Triton ->
OCR of the few regions that pay -> fuse -> rows. The detector runs in a worker thread while the
barcode engines run here: Triton is another process, so the two cores are both busy instead of
one waiting on the other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

import cv2
import numpy as np

from gateway.catalog import Catalog
from gateway.config import Settings
from gateway.inference.client import (
    FACE_MODEL,
    OCR_MODEL,
    PERSON_MODEL,
    InferenceClient,
    InferenceUnavailable,
)
from gateway.pipeline.appearance import describe
from gateway.pipeline.assign import Naming, name_items, orphan_reads
from gateway.pipeline.audit import AuditItem, audit_bay
from gateway.pipeline.codes import code_to_json, read_codes
from gateway.pipeline.crops import Crop, codes_from_crops, merge_codes
from gateway.pipeline.decode import decode_image, image_size
from gateway.pipeline.detect import (
    VersionRecorder,
    calibration_for,
    count_confidence,
    detect_candidates,
)
from gateway.pipeline.fuse import (
    Evidence,
    Facts,
    ItemCode,
    box_sources,
    build_rows,
    classify_codes,
    gather_facts,
)
from gateway.pipeline.ocr_regions import Region, choose_regions
from gateway.pipeline.privacy import find_people
from gateway.pipeline.types import Box, Code, CountResult, Detection, PipelineError, TextLine
from gateway.planogram import BayPlan, Planogram

PREVIEW_MAX_SIDE = 960
DETECTOR_MODEL = "item_detector"
MODEL_RECHECK_S = 30.0  # how long a model's readiness is trusted (detector, people models)
PEOPLE_MODELS = (FACE_MODEL, PERSON_MODEL)  # a photo kept with SHELFCOUNT_BLUR_PEOPLE needs both
# Unnamed items whose labels are OCR'd (see assign.orphan_reads), and the smallest item side
# worth reading: below it label print is too small for the OCR model.
ORPHAN_READS = 6
MIN_READABLE_ITEM_PX = 60


def awaited_models(blur_people: bool) -> list[str]:
    """The models without which a photo waits: OCR and, with SHELFCOUNT_BLUR_PEOPLE, the
    people models (the item detector is not one: without it photos are counted from their
    codes and labels, as before its weights existed)."""
    return [OCR_MODEL, *(PEOPLE_MODELS if blur_people else ())]


class Pipeline:
    """Counts one photo at a time; safe to share between threads (no per-photo state)."""

    def __init__(
        self,
        settings: Settings,
        client: InferenceClient,
        catalog: Catalog,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        planogram: Planogram | None = None,
        keeps_photos: bool = False,
    ) -> None:
        """``keeps_photos``: the caller stores the photos (the gateway), so with
        SHELFCOUNT_BLUR_PEOPLE the faces to blur are found too."""
        self.settings = settings
        self.client = client
        self.catalog = catalog
        self.planogram = planogram or Planogram.empty()
        self.finds_people = keeps_photos and settings.blur_people
        self.clock = clock
        self._locations = {loc.upper() for loc in catalog.locations()}
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pipeline")
        self._readiness: dict[str, tuple[float, bool]] = {}  # model -> (checked at, ready)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def decode(self, data: bytes, *, reduce: int = 1, gray: bool = False) -> np.ndarray:
        return decode_image(
            data,
            max_bytes=self.settings.max_image_bytes,
            max_pixels=self.settings.max_image_pixels,
            reduce=reduce,
            gray=gray,
        )

    def detector_ready(self) -> bool:
        """Whether the item detector is deployed (see ``_model_ready``)."""
        return self._model_ready(DETECTOR_MODEL)

    def _model_ready(self, name: str, trust_no: bool = True) -> bool:
        """Whether Triton serves ``name``; re-checked now and then, not per photo.

        A "no" is only remembered when Triton itself answered: during an outage the next photo
        asks again, so counts made right after Triton comes back use the model. ``trust_no``
        False: a remembered "no" is asked again (a photo that waits for the model anyway).
        """
        now = time.monotonic()
        checked, ready = self._readiness.get(name, (-1e9, False))
        if now - checked > MODEL_RECHECK_S or not (ready or trust_no):
            ready = self.client.model_ready(name)
            if ready or self.client.is_ready():
                self._readiness[name] = (now, ready)
        return ready

    def count(
        self, data: bytes, *, location: str | None = None, preview: bool = False,
        crops: Sequence[Crop] = (),
    ) -> CountResult:
        """Count one photo. ``crops``: parts of the full photo sent beside a reduced one,
        read for the codes the reduced pixels lost (gateway.pipeline.crops)."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        image, width, height = self._decoded(data, preview)
        scale = image.shape[1] / width
        timings["decode"] = _ms(t0)

        keeps_people = self.finds_people and not preview
        if keeps_people:
            self._need_people_models()  # before any work: the photo waits without them
        detect_future: Future[tuple[list[Detection], np.ndarray, float, str | None]] | None = None
        model_version: str | None = None
        if self.detector_ready():
            detect_future = self._executor.submit(self._detect, image, preview)
        people_future = self._executor.submit(self._people, image, scale) \
            if keeps_people else None

        t = time.perf_counter()
        codes = read_codes(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        if crops:
            codes = merge_codes(codes, codes_from_crops(
                crops, image.shape[1], image.shape[0],
                lambda jpeg: self.decode(jpeg, gray=True)))
        timings["codes"] = _ms(t)

        s = self.settings
        item_codes, location_codes = classify_codes(
            codes, self.catalog, s.location_pattern, s.sku_pattern
        )
        ocr: list[tuple[Region, list[TextLine]]] = []
        detections: list[Detection] | None = None
        looks: np.ndarray | None = None
        orphans_read = False
        if not preview:
            items: list[Box] = []
            if not item_codes and detect_future is not None:
                # No product code read: the items' own labels carry the SKU text and expiry,
                # so read a few, spread over the shelves, in this same request.
                detections, looks, timings["detect"], model_version = detect_future.result()
                items = _orphan_items(detections, name_items(detections, [], looks))
                orphans_read = True
            t = time.perf_counter()
            regions = choose_regions(
                image,
                [(ic.box, ic.sku) for ic in item_codes],
                # The whole photo is read when no bin-label code gave the location, and when
                # nothing named the items: no product code and no detector, or a detector that
                # found nothing (a close-up of one huge case it cannot see whole).
                need_overview=not location_codes
                or (not item_codes and (detect_future is None or detections == [])),
                items=items,
            )
            if regions:
                ocr = self._ocr(regions)
            timings["ocr"] = _ms(t)

        facts = self._facts(item_codes, location_codes, ocr, location)
        evidence = Evidence(item_codes=item_codes)
        if detect_future is not None:
            if detections is None:
                detections, looks, timings["detect"], model_version = detect_future.result()
            labelled = _labelled(item_codes, facts)
            naming = name_items(detections, labelled, looks, facts.home)
            if not preview and not orphans_read:
                # Items that no decoded code, read label, pile or look names would fall back on
                # the bin's SKU: read a few of their labels before guessing.
                items = _orphan_items(detections, naming)
                if items:
                    t = time.perf_counter()
                    ocr += self._ocr(choose_regions(image, [], False, items=items))
                    timings["ocr"] = timings.get("ocr", 0.0) + _ms(t)
                    before = facts
                    facts = self._facts(item_codes, location_codes, ocr, location)
                    # Rename only if the reads named something (or moved the bin): the rules
                    # are a pure function of the labels, the looks and the bin's SKU.
                    if (facts.text_skus, facts.home) != (before.text_skus, before.home):
                        labelled = _labelled(item_codes, facts)
                        naming = name_items(detections, labelled, looks, facts.home)
            _assign(evidence, detections, labelled, naming,
                    calibration_for(self.settings.model_repository, model_version))

        t = time.perf_counter()
        rows, boxes = build_rows(evidence, facts, self.catalog, now=self.clock())
        sources = box_sources(evidence, len(boxes))
        timings["fuse"] = _ms(t)
        findings: list[dict[str, object]] = []
        if not preview:
            t = time.perf_counter()
            findings = [f.scaled(1 / scale).to_json() for f in audit_bay(
                [AuditItem(tuple(b[:4]), str(b[5] or ""), src == "own", float(b[4]))
                 for b, src in zip(boxes, sources, strict=True)],
                self.plan_for(facts.location, facts.home), image.shape[1], image.shape[0])]
            timings["audit"] = _ms(t)
        people: list[list[float | str]] = []
        if people_future is not None:
            t = time.perf_counter()
            people = people_future.result()
            timings["people"] = _ms(t)  # what finding people added after the rest was done
        timings["total"] = _ms(t0)
        if scale != 1.0:
            boxes = [[*(round(v / scale, 1) for v in b[:4]), *b[4:]] for b in boxes]
        return CountResult(
            rows=rows,
            boxes=boxes,
            codes=[_code_json(c, scale) for c in codes],
            timings_ms={k: round(v, 1) for k, v in timings.items()},
            width=width,
            height=height,
            location_source=facts.location_source,
            location_known=self.knows_location(facts.location),
            box_sources=sources,
            model_version=model_version,
            findings=findings,
            people=people,
        )

    def plan_for(self, location: str, home: str | None) -> BayPlan | None:
        """What the bay should hold: its planogram rows, else the catalog's home SKU (one
        SKU per bin, layout unknown), else nothing to audit against."""
        plan = self.planogram.plan_for(location)
        if plan is None and home:
            plan = BayPlan(location, ((home,),), planned=False)
        return plan

    def _decoded(self, data: bytes, preview: bool) -> tuple[np.ndarray, int, int]:
        """The photo's pixels (a preview frame at no more than PREVIEW_MAX_SIDE) and the
        photo's own width and height."""
        reduce = 1
        if preview:
            # Preview frames only need detector-sized pixels: let libjpeg decode at 1/n scale.
            try:
                side = max(image_size(data))
            except PipelineError:
                side = 0  # decode_image below reports what is wrong with the bytes
            while reduce < 8 and side / (reduce * 2) >= PREVIEW_MAX_SIDE:
                reduce *= 2
        image = self.decode(data, reduce=reduce)
        if reduce > 1:
            width, height = image_size(data)
        else:
            height, width = image.shape[:2]
        if preview and max(image.shape[:2]) > PREVIEW_MAX_SIDE:
            f = PREVIEW_MAX_SIDE / max(image.shape[:2])
            image = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        return image, width, height

    def knows_location(self, location: str) -> bool | None:
        """Whether the catalog lists ``location`` (None: it lists no locations at all)."""
        known = self._locations
        if not known or not location:
            return None
        return location.upper() in known

    def _ocr(self, regions: list[Region]) -> list[tuple[Region, list[TextLine]]]:
        texts = self.client.ocr([r.image for r in regions])
        return list(zip(regions, texts, strict=True))

    def _facts(
        self,
        item_codes: list[ItemCode],
        location_codes: list[tuple[Box, str]],
        ocr: list[tuple[Region, list[TextLine]]],
        location: str | None,
    ) -> Facts:
        s = self.settings
        return gather_facts(
            item_codes,
            location_codes,
            ocr,
            self.catalog,
            session_location=location,
            location_pattern=s.location_pattern,
            sku_pattern=s.sku_pattern,
        )

    def _need_people_models(self) -> None:
        """Without the face and person models a photo cannot be kept as promised, so it waits
        as for any Triton outage."""
        for model in PEOPLE_MODELS:
            if not self._model_ready(model, trust_no=False):  # it may be back since
                raise InferenceUnavailable(
                    f"Triton model {model} is not ready: photos are not kept with people in "
                    "them (SHELFCOUNT_BLUR_PEOPLE=0 turns blurring off)")

    def _people(self, image: np.ndarray, scale: float) -> list[list[float | str]]:
        """Faces and bodies to blur in the kept photo (photo pixels)."""
        return [[*(round(float(v) / scale, 1) for v in p[:4]), *p[4:]]
                for p in find_people(self.client, image)]

    def _detect(
        self, image: np.ndarray, preview: bool
    ) -> tuple[list[Detection], np.ndarray, float, str | None]:
        """Items, their looks (``appearance``), the time taken and the detector version that
        answered, in the worker thread beside the codes."""
        t = time.perf_counter()
        recorder = VersionRecorder(self.client)
        candidates = detect_candidates(image, recorder, preview=preview)
        threshold, _ = calibration_for(self.settings.model_repository, recorder.version)
        detections = [d for d in candidates if d.score >= threshold]
        looks = describe(image, [d.box for d in detections])
        return detections, looks, _ms(t), recorder.version


def _labelled(item_codes: list[ItemCode], facts: Facts) -> list[tuple[Box, str]]:
    """Everything that names the item it sits on: decoded product codes, then SKU text."""
    return [(ic.box, ic.sku) for ic in item_codes] + facts.text_skus


def _assign(
    evidence: Evidence,
    detections: list[Detection],
    labelled: list[tuple[Box, str]],
    naming: Naming,
    calibration: tuple[float, float],
) -> None:
    """Record each detected item's SKU (``naming``: own code/label, pile, look, row's
    neighbours, the bin's), where it came from, and the count confidence per SKU (with the
    answering version's ``calibration``: threshold and band)."""
    home = naming.default_sku
    skus = naming.skus
    sources = []
    for det, sku in zip(detections, skus, strict=True):
        own = any(_inside(_centre(b), det.box) and k == sku for b, k in labelled)
        sources.append("own" if own else "home" if sku and sku == home
                       else "neighbour" if sku else "unknown")
    by_sku: dict[str, list[Detection]] = {}
    for det, sku in zip(detections, skus, strict=True):
        by_sku.setdefault(sku or "", []).append(det)
    evidence.detections = detections
    evidence.item_skus = skus
    evidence.item_sources = sources
    evidence.count_confidence = {k: count_confidence(v, *calibration) for k, v in by_sku.items()}


def _orphan_items(detections: list[Detection], naming: Naming) -> list[Box]:
    """Items whose labels are read before an unnamed shelf run falls back on the bin's SKU."""
    picks = orphan_reads(detections, naming, ORPHAN_READS, MIN_READABLE_ITEM_PX)
    return [detections[i].box for i in picks]


def _centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _inside(point: tuple[float, float], box: Box) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def _code_json(code: Code, scale: float) -> dict[str, object]:
    out = code_to_json(code)
    out["Box"] = [round(v / scale, 1) for v in code.box]
    return out


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
