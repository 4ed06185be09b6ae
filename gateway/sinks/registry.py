"""Which sinks are on: a sink is on when its settings are present.

Order matters: Tryton first, because the sheet and the alerts read the system quantity that
Tryton's inventory snapshots (see :mod:`gateway.sinks.worker`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gateway.config import PREFIX, Settings

from .base import Sink

log = logging.getLogger(__name__)

# Sink name -> the settings (lower-case names in Settings.extra) it needs, all of them.
SINK_SETTINGS: dict[str, tuple[str, ...]] = {
    "tryton": ("tryton_url", "tryton_db", "tryton_user", "tryton_password"),
    "sheets": ("sheets_credentials", "sheets_spreadsheet"),
    "folder": ("drop_dir",),
    "alerts": ("alert_webhook",),
}


class SinkConfigError(ValueError):
    """A sink has some of its settings but not all."""


def configured(settings: Settings) -> list[str]:
    """Names of the sinks with any of their settings present, in delivery order."""
    return [name for name, keys in SINK_SETTINGS.items()
            if any(settings.extra.get(k) for k in keys)]


def missing_settings(settings: Settings, name: str) -> list[str]:
    return [PREFIX + k.upper() for k in SINK_SETTINGS[name] if not settings.extra.get(k)]


def require(settings: Settings, name: str) -> None:
    """Raise SinkConfigError unless ``name`` is a sink with all its settings."""
    if name not in SINK_SETTINGS:
        raise SinkConfigError(f"unknown sink {name!r} (one of {', '.join(SINK_SETTINGS)})")
    missing = missing_settings(settings, name)
    if missing:
        raise SinkConfigError(f"{name} is not configured: missing {', '.join(missing)}")


def build_sinks(settings: Settings, session_rows: Callable[[str], list[dict[str, Any]]],
                only: str | None = None) -> list[Sink]:
    """The fully configured sinks (or just ``only``), wired to each other and to the catalog.

    A half-configured sink is left out with a warning (``shelfcount doctor`` names what is
    missing); asking for it with ``only`` raises SinkConfigError instead.
    """
    from .alerts import WebhookSink
    from .folder import FolderSink
    from .sheets import SheetsSink
    from .tryton import TrytonSink
    from .variance import reorder_lookup

    if only is not None:
        require(settings, only)
    names = []
    for name in configured(settings):
        missing = missing_settings(settings, name)
        if missing:
            if only is None:
                log.warning("sink %s left out: missing %s", name, ", ".join(missing))
        else:
            names.append(name)
    reorder = reorder_lookup(settings)
    tryton = TrytonSink.from_settings(settings) if "tryton" in names else None
    system = tryton.system_quantities if tryton is not None else None
    sinks: list[Sink] = []
    for name in names:
        if only is not None and name != only:
            continue
        if name == "tryton" and tryton is not None:
            sinks.append(tryton)
        elif name == "sheets":
            sinks.append(SheetsSink.from_settings(settings, reorder_point=reorder,
                                                  system_quantities=system))
        elif name == "folder":
            sinks.append(FolderSink.from_settings(settings, session_rows))
        elif name == "alerts":
            sinks.append(WebhookSink.from_settings(settings, reorder_point=reorder,
                                                   system_quantities=system))
    return sinks
