"""Photos in S3-compatible object storage: ``SHELFCOUNT_PHOTO_STORE=s3://bucket/prefix``.

Why: gateway replicas on several machines must all read the photos any of them acknowledged;
a bucket is the shared place (a ReadWriteMany volume with the local store is the other). The
same contract as the disk store (gateway.store.photos.PhotoStore): objects named by the
SHA-256 of the bytes the walker sent, written (and answered 200 by the server) before the
photo is acknowledged, a redacted photo marked so that a re-sent original never replaces it.
boto3 speaks the S3 API; endpoint, region and keys come from ``SHELFCOUNT_S3_*``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, SecretStr

_HASH = re.compile(r"[0-9a-f]{64}")
_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3Settings(BaseModel):
    """``SHELFCOUNT_S3_ENDPOINT`` (empty: AWS), ``_REGION``, ``_ACCESS_KEY``, ``_SECRET_KEY``
    (both empty: boto3's own chain, e.g. an instance role)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    endpoint: str = Field("", alias="s3_endpoint")
    region: str = Field("us-east-1", alias="s3_region")
    access_key: str = Field("", alias="s3_access_key")
    secret_key: SecretStr = Field(SecretStr(""), alias="s3_secret_key")


def parse_location(url: str) -> tuple[str, str]:
    """(bucket, prefix) of ``s3://bucket/prefix``; ValueError for anything else."""
    parts = urlparse(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"SHELFCOUNT_PHOTO_STORE={url!r}: expected s3://bucket/prefix")
    return parts.netloc, parts.path.strip("/")


class S3PhotoStore:
    """Photos as objects ``<prefix>/ab/cd/<sha256>`` in one bucket."""

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.client = client

    @classmethod
    def from_settings(cls, url: str, extra: dict[str, str]) -> S3PhotoStore:
        import boto3
        from botocore.config import Config

        bucket, prefix = parse_location(url)
        s3 = S3Settings.model_validate(extra)
        keys = {"aws_access_key_id": s3.access_key,
                "aws_secret_access_key": s3.secret_key.get_secret_value()} \
            if s3.access_key else {}
        client = boto3.client(
            "s3", endpoint_url=s3.endpoint or None, region_name=s3.region,
            config=Config(retries={"max_attempts": 5, "mode": "standard"},
                          connect_timeout=5, read_timeout=30), **keys)
        return cls(bucket, prefix, client)

    def key(self, digest: str) -> str:
        if not _HASH.fullmatch(digest):
            raise ValueError(f"not a photo hash: {digest!r}")
        name = f"{digest[:2]}/{digest[2:4]}/{digest}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def _size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
                return None
            raise

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its hash (nothing written when it is there already, or
        when the stored copy was redacted)."""
        digest = hashlib.sha256(data).hexdigest()
        key = self.key(digest)
        if self._size(key + ".redacted") is not None or self._size(key) == len(data):
            return digest
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return digest

    def redact(self, digest: str, data: bytes) -> None:
        """Replace the photo with ``data`` (people blurred), the marker first."""
        key = self.key(digest)
        self.client.put_object(Bucket=self.bucket, Key=key + ".redacted", Body=b"")
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def get(self, digest: str) -> bytes:
        """The photo's bytes; FileNotFoundError when there is none (as the disk store)."""
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(digest))["Body"]
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
                raise FileNotFoundError(self.key(digest)) from None
            raise
        return body.read()

    def exists(self, digest: str) -> bool:
        return self._size(self.key(digest)) is not None

    def delete(self, digest: str) -> None:
        key = self.key(digest)
        self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": [
            {"Key": key}, {"Key": key + ".redacted"}], "Quiet": True})
