"""Scheduled counts from fixed cameras.

A YAML file (``SHELFCOUNT_CAMERAS_CONFIG``) maps zones to camera snapshot URLs and cron
times::

    zones:
      aisle-a:
        schedule: "0 6,18 * * *"        # minute hour day-of-month month day-of-week
        cameras:
          - url: http://10.0.0.21/snapshot.jpg
            location: A-12-3            # optional: the bin this camera looks at
            username: viewer            # optional HTTP basic auth
            password: secret

Times are the gateway machine's local time. Each run of a zone is one session of the device
``camera:<zone>``; each snapshot is counted and stored like a phone photo. The photo id is
zone + camera + minute, so a restart within the same minute does not count twice.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from croniter import croniter

from gateway.schema import PhotoHeader

log = logging.getLogger("shelfcount.gateway.cameras")

class CameraConfigError(ValueError):
    """The cameras file is malformed; the message names the place."""


@dataclass(frozen=True)
class Cron:
    """A five-field cron expression, read and matched by croniter (classic semantics: when
    both day-of-month and day-of-week are restricted, either may match; 7 is Sunday too)."""

    text: str

    @classmethod
    def parse(cls, text: str) -> Cron:
        text = str(text)
        parts = text.split()
        if len(parts) != 5:
            raise CameraConfigError(f"cron {text!r}: expected 5 fields, got {len(parts)}")
        if not croniter.is_valid(text):
            raise CameraConfigError(f"cron {text!r} is not a valid expression "
                                    "(minute hour day-of-month month day-of-week)")
        return cls(text)

    def matches(self, moment: datetime) -> bool:
        return bool(croniter.match(self.text, moment.replace(second=0, microsecond=0)))


@dataclass(frozen=True)
class Camera:
    url: str
    location: str | None = None
    username: str | None = None
    password: str | None = None
    timeout_s: float = 15.0


@dataclass(frozen=True)
class Zone:
    name: str
    cron: Cron
    cameras: tuple[Camera, ...] = field(default_factory=tuple)


def load_cameras(path: str | Path) -> list[Zone]:
    """Parse the cameras file; a clear CameraConfigError when anything is off."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CameraConfigError(f"cannot read cameras config {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise CameraConfigError(f"{path}: not valid YAML: {exc}") from None
    zones = (data or {}).get("zones") if isinstance(data, dict) else None
    if not isinstance(zones, dict) or not zones:
        raise CameraConfigError(f"{path}: expected a 'zones:' mapping")
    out = []
    for name, spec in zones.items():
        where = f"{path}: zone {name}"
        if not isinstance(spec, dict) or "schedule" not in spec:
            raise CameraConfigError(f"{where}: needs 'schedule' and 'cameras'")
        cameras = spec.get("cameras")
        if not isinstance(cameras, list) or not cameras:
            raise CameraConfigError(f"{where}: 'cameras' must be a non-empty list")
        parsed = []
        for i, cam in enumerate(cameras):
            if isinstance(cam, str):
                cam = {"url": cam}
            if not isinstance(cam, dict) or not str(cam.get("url", "")).startswith(
                ("http://", "https://")
            ):
                raise CameraConfigError(f"{where}: camera {i + 1} needs an http(s) 'url'")
            parsed.append(Camera(
                url=str(cam["url"]), location=cam.get("location"),
                username=cam.get("username"), password=cam.get("password"),
                timeout_s=float(cam.get("timeout_s", 15.0)),
            ))
        out.append(Zone(str(name), Cron.parse(spec["schedule"]), tuple(parsed)))
    return out


def fetch_snapshot(camera: Camera, max_bytes: int) -> bytes:
    request = urllib.request.Request(camera.url, headers={"User-Agent": "ShelfCount"})
    if camera.username is not None:
        secret = f"{camera.username}:{camera.password or ''}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(secret).decode())
    with urllib.request.urlopen(request, timeout=camera.timeout_s) as response:  # noqa: S310
        data = response.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"snapshot from {camera.url} is larger than {max_bytes} bytes")
    return data


class CameraScheduler:
    """Runs each zone at its cron minutes: fetch every camera, store and queue the photos."""

    def __init__(self, services: Any, zones: list[Zone]) -> None:
        self.services = services
        self.zones = zones
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_minute: datetime | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="cameras", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = datetime.now().astimezone().replace(second=0, microsecond=0)
            if now != self._last_minute:
                self._last_minute = now
                self.run_due(now)
            pause = 60.5 - datetime.now().second - datetime.now().microsecond / 1e6
            self._stop.wait(max(1.0, pause))

    def run_due(self, moment: datetime) -> list[str]:
        """Run every zone whose schedule matches ``moment``; returns the count ids queued."""
        queued: list[str] = []
        for zone in self.zones:
            if zone.cron.matches(moment):
                queued.extend(self.run_zone(zone, moment))
        return queued

    def run_zone(self, zone: Zone, moment: datetime) -> list[str]:
        store = self.services.store
        device_name = f"camera:{zone.name}"
        device = store.device_by_name(device_name)
        if device is None:
            device, _ = store.add_device(device_name, "camera")
        session = store.create_session(device, f"{zone.name} {moment:%Y-%m-%d %H:%M}")
        stamp = moment.strftime("%Y%m%dT%H%M")
        zone_id = re.sub(r"[^A-Za-z0-9._:-]", "_", zone.name)[:60]
        queued = []
        for index, camera in enumerate(zone.cameras):
            try:
                data = fetch_snapshot(camera, self.services.settings.max_image_bytes)
                record, _ = self.services.submit_photo(
                    device, session=session, data=data, source="camera", rate_limit=False,
                    header=PhotoHeader(id=f"{zone_id}.{index}.{stamp}", location=camera.location),
                )
                queued.append(record.id)
            except Exception as exc:  # noqa: BLE001 - one dead camera must not stop the zone
                log.warning("camera %s (%s): %s", zone.name, camera.url, exc)
        return queued
