"""The counting pipeline for the gateway, built lazily and rebuilt when the catalog or the
planogram changes."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("shelfcount.gateway")


class PipelineProvider:
    """Builds the pipeline lazily and rebuilds it when the catalog or planogram file changes.

    ``shelfcount catalog import`` and ``planogram import`` while the gateway runs must take
    effect without a restart.
    """

    def __init__(self, settings: Any, triton_url: str) -> None:
        from gateway.inference.pool import connect

        self.settings = settings
        # The worker queues and retries itself during an outage, so the client should give up
        # quickly instead of holding a worker thread for its default 20 s. Several URLs
        # (comma-separated): calls spread over them (gateway.inference.pool).
        self.client = connect(triton_url, settings.triton_request_timeout_s, retry_wait_s=1.0)
        self._paths = (Path(settings.data_dir) / "catalog.csv",
                       Path(settings.data_dir) / "planogram.csv")
        self._stamp: tuple[float, ...] | None = None
        self._pipeline: Any = None
        self._lock = threading.Lock()

    def _files_stamp(self) -> tuple[float, ...]:
        stamps = []
        for path in self._paths:
            try:
                stamps.append(path.stat().st_mtime)
            except FileNotFoundError:
                stamps.append(-1.0)
        return tuple(stamps)

    def get(self) -> Any:
        stamp = self._files_stamp()
        with self._lock:
            if self._pipeline is None or stamp != self._stamp:
                from gateway.catalog import load_catalog
                from gateway.pipeline.run import Pipeline

                old = self._pipeline
                data_dir = self.settings.data_dir
                self._pipeline = Pipeline(self.settings, self.client, load_catalog(data_dir),
                                          planogram=_planogram(data_dir), keeps_photos=True)
                self._stamp = stamp
                if old is not None:
                    old.close()
            return self._pipeline

    def products(self) -> list[dict[str, str]]:
        """Every catalog product: SKU, description, barcode, home location."""
        return [{"sku": e.sku, "description": e.description, "barcode": e.barcode,
                 "location": e.location or ""} for e in self.get().catalog.entries]

    def catalog_entry(self, sku: str) -> dict[str, Any] | None:
        entry = self.get().catalog.by_sku(sku)
        if entry is None:
            return None
        return {"SKU": entry.sku, "Product_Description": entry.description,
                "Unit_Price": str(entry.unit_price)}

    def locations(self) -> list[dict[str, str]]:
        """The catalog's bin locations with their home SKU, for the walker's location picker."""
        catalog = self.get().catalog
        out = []
        for location in catalog.locations():
            entry = catalog.by_sku(catalog.home_sku(location))
            out.append({"location": location, "sku": entry.sku if entry else "",
                        "description": entry.description if entry else ""})
        return out

    def triton_ready(self) -> bool:
        return self.client.is_ready()

    def models_ready(self) -> dict[str, bool]:
        """Whether Triton serves each model the counts use (an operator must see which one
        is missing when photos wait)."""
        from gateway.pipeline.run import DETECTOR_MODEL, awaited_models

        names = [*awaited_models(self.settings.blur_people), DETECTOR_MODEL]
        return {name: bool(self.client.model_ready(name)) for name in names}

    def ready_to_count(self) -> bool:
        """Triton answers and serves every model a waiting photo waits for."""
        from gateway.pipeline.run import awaited_models

        return self.client.is_ready() and all(
            self.client.model_ready(name) for name in awaited_models(self.settings.blur_people))

    def close(self) -> None:
        with self._lock:
            if self._pipeline is not None:
                self._pipeline.close()
            self.client.close()


def _planogram(data_dir: Path) -> Any:
    """The stored plan; one edited by hand into something unreadable is logged and ignored
    (counting goes on, the audit falls back on the catalog's home bins)."""
    from gateway.planogram import Planogram, PlanogramError, load_planogram

    try:
        return load_planogram(data_dir)
    except PlanogramError as exc:
        log.warning("planogram unusable, audit falls back on home bins: %s", exc)
        return Planogram.empty()
