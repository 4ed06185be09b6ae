"""gRPC CountService on its own port, and the generated code being current."""

from __future__ import annotations

import filecmp
import uuid
from pathlib import Path

import grpc
import pytest

from gateway.proto_build import DEFAULT_OUT, generate
from gateway.proto_gen.shelfcount.v1 import counting_pb2 as pb
from gateway.proto_gen.shelfcount.v1 import counting_pb2_grpc as pb_grpc

from .server_support import new_token, running_gateway, shelf_jpeg


def test_generated_code_is_current(tmp_path: Path) -> None:
    written = generate(tmp_path)
    assert written
    for path in written:
        committed = DEFAULT_OUT / path.relative_to(tmp_path)
        assert committed.exists(), f"{committed} missing: run python -m gateway.proto_build"
        assert filecmp.cmp(path, committed, shallow=False), (
            f"{committed} is stale: run python -m gateway.proto_build")


@pytest.mark.triton
def test_count_and_stream(triton, tmp_path: Path) -> None:
    with running_gateway(tmp_path, triton.url, max_message_bytes=4_000_000) as server:
        token = new_token(tmp_path, "camera-1", "camera")
        meta = (("authorization", f"Bearer {token}"),)
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = pb_grpc.CountServiceStub(channel)
            photo_id = str(uuid.uuid4())
            result = stub.Count(pb.Photo(id=photo_id, image=shelf_jpeg(30), location="C-1-1"),
                                metadata=meta, timeout=120)
            assert result.id == photo_id and result.count_id and not result.error.code
            assert result.rows and result.rows[0].sku and result.timings_ms["total"] > 0
            assert result.model_version == "1"  # triton_models/item_detector/1 answered
            again = stub.Count(pb.Photo(id=photo_id, image=shelf_jpeg(30)), metadata=meta,
                               timeout=120)
            assert again.count_id == result.count_id

            bad = stub.Count(pb.Photo(id="bad", image=b"garbage"), metadata=meta, timeout=60)
            assert bad.error.code == "not_an_image" and not bad.rows

            with pytest.raises(grpc.RpcError) as denied:
                stub.Count(pb.Photo(id="x", image=shelf_jpeg(30)), timeout=30)
            assert denied.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as wrong:
                stub.Count(pb.Photo(id="x", image=b"x"),
                           metadata=(("authorization", "Bearer nope"),), timeout=30)
            assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as big:
                stub.Count(pb.Photo(id="big", image=b"\xff" * 5_000_000), metadata=meta,
                           timeout=30)
            assert big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

            ids = [str(uuid.uuid4()) for _ in range(3)]
            photos = [pb.Photo(id=i, image=shelf_jpeg(31 + n)) for n, i in enumerate(ids)]
            photos.append(pb.Photo(id="live", image=shelf_jpeg(34, 640, 360), preview=True))
            answers = list(stub.Stream(iter(photos), metadata=meta, timeout=180))
            by_id = {a.id: a for a in answers}
            assert set(by_id) == {*ids, "live"}
            assert all(by_id[i].rows and by_id[i].count_id for i in ids)
            assert by_id["live"].preview and not by_id["live"].count_id
        view = server.services.store.count_by_client(
            server.services.store.device_by_token(token).id, ids[0])
        assert view is not None and view.source == "grpc" and view.status == "done"


@pytest.mark.triton
def test_a_retake_over_grpc_replaces_the_bays_photo_and_conflicts_are_reported(
    triton, tmp_path: Path
) -> None:
    from gateway.training.scenes import encode_jpeg, render_scene

    with running_gateway(tmp_path, triton.url) as server:
        meta = (("authorization", f"Bearer {new_token(tmp_path, 'camera-2', 'camera')}"),)
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = pb_grpc.CountServiceStub(channel)
            data = encode_jpeg(render_scene(33, location="B-01-2", difficulty=0.2))
            first = stub.Count(pb.Photo(id="g-1", image=data, location="C-02-2"),
                               metadata=meta, timeout=120)
            assert first.current and first.location_conflict.reason == "mismatch"
            assert first.location_conflict.read == "B-01-2"
            retake = stub.Count(pb.Photo(id="g-2", image=data, replaces="g-1"),
                                metadata=meta, timeout=120)
            assert retake.bay == first.bay and list(retake.replaced) == ["g-1"]
            assert retake.bay_rows and not retake.location_conflict.reason
            with pytest.raises(grpc.RpcError) as bad:
                stub.Count(pb.Photo(id="g-3", image=data, replaces="nope"), metadata=meta,
                           timeout=60)
            assert bad.value.code() == grpc.StatusCode.NOT_FOUND
