"""Which sinks exist and which are on: one list of plug-ins, in delivery order.

Order matters: Tryton first, because the sheet and the alerts read the system quantity that
Tryton's inventory snapshots (see :mod:`gateway.sinks.worker`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gateway.config import Settings

from . import alerts, folder, sheets, tryton
from .base import Sink
from .plugin import SinkContext, SinkPlugin, setting_rows
from .variance import VarianceSettings, reorder_lookup

log = logging.getLogger(__name__)

PLUGINS: tuple[SinkPlugin, ...] = (tryton.PLUGIN, sheets.PLUGIN, folder.PLUGIN, alerts.PLUGIN)


class SinkConfigError(ValueError):
    """An unknown sink, or one with some of its settings but not all."""


def plugin(name: str) -> SinkPlugin:
    for candidate in PLUGINS:
        if candidate.name == name:
            return candidate
    raise SinkConfigError(f"unknown sink {name!r} (one of {', '.join(p.name for p in PLUGINS)})")


def configured(settings: Settings) -> list[SinkPlugin]:
    """The sinks with any of their required settings present, in delivery order."""
    return [p for p in PLUGINS if p.is_on(settings)]


def require(settings: Settings, name: str) -> None:
    """Raise SinkConfigError unless ``name`` is a sink with all its settings."""
    missing = plugin(name).missing(settings)
    if missing:
        raise SinkConfigError(f"{name} is not configured: missing {', '.join(missing)}")


def build_sinks(settings: Settings, session_rows: Callable[[str], list[dict[str, Any]]],
                only: str | None = None,
                session_findings: Callable[[str], list[dict[str, Any]]] | None = None
                ) -> list[Sink]:
    """The fully configured sinks (or just ``only``), wired to each other and to the catalog.

    A half-configured sink is left out with a warning (``shelfcount doctor`` names what is
    missing); asking for it with ``only`` raises SinkConfigError instead. A sink that
    provides system quantities (Tryton) is built even for ``only`` another one, which reads
    them.
    """
    if only is not None:
        require(settings, only)
    context = SinkContext(settings, session_rows, reorder_lookup(settings),
                          session_findings=session_findings)
    sinks: list[Sink] = []
    for candidate in configured(settings):
        missing = candidate.missing(settings)
        if missing:
            if only is None:
                log.warning("sink %s left out: missing %s", candidate.name, ", ".join(missing))
            continue
        if only is not None and candidate.name != only and \
                not candidate.provides_system_quantities:
            continue
        sink = candidate.create(context)
        if candidate.provides_system_quantities:
            context.system_quantities = sink.system_quantities  # type: ignore[attr-defined]
        if only is None or candidate.name == only:
            sinks.append(sink)
    return sinks


def settings_table() -> str:
    """README's table of the sinks' settings (``shelfcount sinks`` prints it)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for model in (*(p.settings_model for p in PLUGINS), VarianceSettings):
        lines += [f"| `{var}` | {f'`{default}`' if default else ''} | {meaning} |"
                  for var, default, meaning in setting_rows(model)]
    return "\n".join(lines)
