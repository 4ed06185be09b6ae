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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from croniter import croniter

from gateway.schema import PhotoHeader
from gateway.store.cameras_repo import CameraRun
from gateway.store.leases_repo import replica_owner

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
    """Runs each zone at its cron minutes: fetch every camera, store and queue the photos.

    Several gateway replicas share one schedule: each round is claimed in the store
    (gateway.store.cameras_repo), so one replica fetches it, and a round whose replica died
    half-way is finished by another within the lease time.
    """

    # a round found stalled later than this after its minute is left as it stands
    RESUME_WITHIN = timedelta(hours=1)

    def __init__(self, services: Any, zones: list[Zone]) -> None:
        self.services = services
        self.zones = zones
        self.owner = replica_owner()
        self.lease_s = float(services.settings.lease_s)
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
            try:
                if now != self._last_minute:
                    self._last_minute = now
                    self.run_due(now)
                self.resume_stalled()
            except Exception:  # noqa: BLE001 - the database away for a moment: next minute
                log.exception("camera schedule pass failed")
            pause = min(self.lease_s, 60.5 - datetime.now().second
                        - datetime.now().microsecond / 1e6)
            self._stop.wait(max(1.0, pause))

    def run_due(self, moment: datetime) -> list[str]:
        """Run every zone whose schedule matches ``moment`` and that no other replica has
        started; returns the count ids queued."""
        queued: list[str] = []
        for zone in self.zones:
            if not zone.cron.matches(moment):
                continue
            run = self.services.store.claim_camera_run(zone.name, moment.isoformat(),
                                                       self.owner, self.lease_s)
            if run is None:
                log.info("camera zone %s at %s: another gateway runs it", zone.name, moment)
                continue
            queued.extend(self.run_zone(zone, moment, run))
        return queued

    def resume_stalled(self) -> list[str]:
        """Finish the rounds another replica started and stopped renewing (it died)."""
        store = self.services.store
        since = datetime.now().astimezone() - self.RESUME_WITHIN
        queued: list[str] = []
        zones = {zone.name: zone for zone in self.zones}
        for run in store.claim_stalled_camera_runs(self.owner, self.lease_s, since):
            zone = zones.get(run.zone)
            if zone is None:  # no longer in this gateway's cameras file
                store.finish_camera_run(run, self.owner)
                continue
            log.warning("camera zone %s at %s: finishing a round another gateway left",
                        run.zone, run.minute)
            queued.extend(self.run_zone(zone, datetime.fromisoformat(run.minute), run))
        return queued

    def run_zone(self, zone: Zone, moment: datetime, run: CameraRun) -> list[str]:
        """Fetch the zone's cameras not yet stored for this round, one session per round."""
        store = self.services.store
        device = self._device(zone)
        session = store.get_session(run.session_id) if run.session_id else None
        if session is None:
            session = store.create_session(device, f"{zone.name} {moment:%Y-%m-%d %H:%M}")
            store.camera_run_session(run, session.id)
        stamp = moment.strftime("%Y%m%dT%H%M")
        zone_id = re.sub(r"[^A-Za-z0-9._:-]", "_", zone.name)[:60]
        queued = []
        for index, camera in enumerate(zone.cameras):
            photo_id = f"{zone_id}.{index}.{stamp}"
            if store.count_by_client(device.id, photo_id) is None:
                record = self._snapshot(zone, camera, device, session, photo_id)
                if record is not None:
                    queued.append(record)
            if not store.renew_camera_run(run, self.owner, self.lease_s):
                log.warning("camera zone %s: the round was taken over", zone.name)
                return queued
        store.finish_camera_run(run, self.owner)
        return queued

    def _device(self, zone: Zone) -> Any:
        store = self.services.store
        device = store.device_by_name(f"camera:{zone.name}")
        if device is None:
            device, _ = store.add_device(f"camera:{zone.name}", "camera")
        return device

    def _snapshot(self, zone: Zone, camera: Camera, device: Any, session: Any,
                  photo_id: str) -> str | None:
        try:
            data = fetch_snapshot(camera, self.services.settings.max_image_bytes)
            record, _ = self.services.submit_photo(
                device, session=session, data=data, source="camera", rate_limit=False,
                header=PhotoHeader(id=photo_id, location=camera.location),
            )
            return record.id
        except Exception as exc:  # noqa: BLE001 - one dead camera must not stop the zone
            log.warning("camera %s (%s): %s", zone.name, camera.url, exc)
            return None
