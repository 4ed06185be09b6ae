"""Issue 12: on a slow link the phone sends a reduced photo and full-resolution crops of its
codes in the same binary message; the gateway reads the codes the reduced pixels lost (real
gateway, real embedded Triton, WebSocket). Crops that do not add up are refused, nothing
stored."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest

from gateway.pipeline.codes import read_codes
from gateway.pipeline.crops import codes_from_crops
from gateway.server import GatewayServer
from gateway.server.count_jobs import stored_crops
from gateway.training.scenes import encode_jpeg, render_scene
from tests.bench.reduced_bench import CROPPED_SIDE, code_crops, reduced

from .server_support import WsClient, new_token, outcome, running_gateway

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def gw(triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    with running_gateway(tmp_path_factory.mktemp("gw-crops"), triton.url) as server:
        yield server


@pytest.fixture(scope="module")
def twelve_mp() -> bytes:
    return encode_jpeg(render_scene(1777, width=4032, height=3024), quality=90)


@pytest.fixture
def phone(gw: GatewayServer) -> Iterator[WsClient]:
    client = WsClient(gw)
    client.hello(new_token(gw.settings.data_dir, f"walker-{uuid.uuid4().hex[:6]}"))
    yield client
    client.close()


def _header(crops: list, full: tuple[int, int]) -> dict[str, Any]:
    return {"full": list(full), "parts": [{"box": [int(v) for v in c.box],
                                           "bytes": len(c.jpeg)} for c in crops]}


def _codes(data: bytes) -> list:
    return read_codes(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE))


def test_code_crops_bring_back_the_codes_a_reduced_photo_lost(
        gw: GatewayServer, phone: WsClient, twelve_mp: bytes) -> None:
    small, crops = reduced(twelve_mp, CROPPED_SIDE), code_crops(twelve_mp)
    assert crops and len(small) + sum(len(c.jpeg) for c in crops) < len(twelve_mp) / 5
    plain, with_crops = str(uuid.uuid4()), str(uuid.uuid4())
    phone.photo(plain, small)
    without = phone.wait_for(outcome(plain))
    phone.photo(with_crops, small + b"".join(c.jpeg for c in crops),
                crops=_header(crops, (4032, 3024)), replaces=plain)
    got = phone.wait_for(outcome(with_crops))
    assert got["type"] == "result", got
    in_full = _codes(twelve_mp)
    # The small photo reads a third of the codes; with the crops nearly all of them.
    assert len(without["codes"]) < 0.5 * len(in_full) <= 0.9 * len(in_full) <= len(got["codes"])
    # Stored with the photo: counted again from the store (a restart), the same codes, each
    # where the full photo has it, in the small photo's pixels.
    record = gw.services.store.get_count(got["count_id"])
    assert record is not None and record.crops is not None
    parts = stored_crops(record, gw.services.photos.get)
    again = gw.services.pipelines.get().count(small, crops=parts)
    assert len(again.codes) == len(got["codes"])
    f = CROPPED_SIDE / 4032
    read = codes_from_crops(parts, 1280, 960, lambda jpeg: cv2.imdecode(
        np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE))
    assert len(read) >= 0.9 * len(in_full)
    for code in read:
        cx, cy = (code.box[0] + code.box[2]) / 2, (code.box[1] + code.box[3]) / 2
        assert any(c.text == code.text and c.box[0] * f - 2 <= cx <= c.box[2] * f + 2
                   and c.box[1] * f - 2 <= cy <= c.box[3] * f + 2 for c in in_full), code


@pytest.mark.parametrize("damage, code", [
    ("more_bytes_than_sent", "bad_request"),
    ("box_outside", "bad_request"),
    ("not_a_jpeg", "not_an_image"),
    ("other_shape", "bad_request"),
    ("bigger_than_its_box", "bad_request"),
])
def test_crops_that_do_not_add_up_are_refused(gw: GatewayServer, phone: WsClient,
                                               twelve_mp: bytes, damage: str,
                                               code: str) -> None:
    small, crops = reduced(twelve_mp, CROPPED_SIDE), code_crops(twelve_mp)[:2]
    header, blob = _header(crops, (4032, 3024)), b"".join(c.jpeg for c in crops)
    if damage == "more_bytes_than_sent":
        header["parts"][0]["bytes"] = len(small) + len(blob)
    elif damage == "box_outside":
        header["parts"][0]["box"] = [4000, 10, 4100, 60]
    elif damage == "not_a_jpeg":
        blob = b"\0" * len(crops[0].jpeg) + crops[1].jpeg
    elif damage == "other_shape":
        header["full"] = [3024, 3024]
    else:  # a small box claiming a big picture: decoding it would cost more than the box
        x1, y1 = header["parts"][0]["box"][:2]
        header["parts"][0]["box"] = [x1, y1, x1 + 8, y1 + 8]
    photo_id = str(uuid.uuid4())
    before = gw.services.store.count_by_client  # nothing stored under this id afterwards
    phone.photo(photo_id, small + blob, crops=header)
    answer = phone.wait_for(lambda m: m.get("id") == photo_id or m["type"] == "error")
    assert answer["type"] == "error" and answer["code"] == code, answer
    assert all(before(d.id, photo_id) is None for d in gw.services.store.list_devices())


def test_a_crop_that_does_not_decode_is_skipped_not_the_photo() -> None:
    from gateway.pipeline.crops import Crop
    from gateway.pipeline.types import PipelineError

    def decode(jpeg: bytes) -> np.ndarray:
        if jpeg == b"broken":
            raise PipelineError("not_an_image", "broken crop")
        return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)

    full = encode_jpeg(render_scene(1777, width=4032, height=3024), quality=90)
    good = code_crops(full)[:3]
    parts = [Crop(good[0].box, (4032, 3024), b"broken"), *good]
    assert len(codes_from_crops(parts, 1280, 960, decode)) == len(
        codes_from_crops(good, 1280, 960, decode)) > 0
