"""What every sink declares: its name, a typed settings model, and how to build it.

The registry, ``shelfcount doctor``, ``shelfcount sinks`` (the settings table in README) and
the rule "a sink is on when its settings are present" all read these declarations, so a new
sink is one module with one ``PLUGIN``, listed in :data:`gateway.sinks.registry.PLUGINS`.

A settings model is a pydantic model whose field aliases are the ``SHELFCOUNT_*`` names less
the prefix, lower-case, as they arrive in ``Settings.extra``. A field without a default is
required; a sink is on as soon as one of its required settings is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.config import PREFIX, Settings

from .base import Sink


class SinkSettings(BaseModel):
    """Base of the settings models: immutable, filled by alias (the variable's name)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


@dataclass
class SinkContext:
    """What a sink may need besides its own settings: all settings (the shared variance
    thresholds), the store's session rows, the catalog's reorder points, and the system
    quantities of a sink that books stock before it (Tryton)."""

    settings: Settings
    session_rows: Callable[[str], list[dict[str, Any]]]
    reorder_point: Callable[[str], int | None] | None = None
    system_quantities: Any = None
    # the session's shelf audit findings as they stand (the drop folder's *_findings.csv)
    session_findings: Callable[[str], list[dict[str, Any]]] | None = None


@dataclass(frozen=True)
class SinkPlugin:
    """One kind of sink. ``provides_system_quantities``: the sinks after it get its
    ``system_quantities`` (the ERP's stock before the count) for their variance columns."""

    name: str
    settings_model: type[SinkSettings]
    build: Callable[[Any, SinkContext], Sink]
    provides_system_quantities: bool = False

    def required(self) -> list[str]:
        return [str(f.alias) for f in self.settings_model.model_fields.values()
                if f.is_required()]

    def is_on(self, settings: Settings) -> bool:
        return any(settings.extra.get(k) for k in self.required())

    def missing(self, settings: Settings) -> list[str]:
        """The required settings not given, as environment variable names."""
        return [PREFIX + k.upper() for k in self.required() if not settings.extra.get(k)]

    def create(self, context: SinkContext) -> Sink:
        """Parse this sink's settings and build it (ValueError: one line naming the variable)."""
        return self.build(parse_settings(self.settings_model, context.settings), context)


def parse_settings(model: type[BaseModel], settings: Settings) -> Any:
    """``model`` filled from ``Settings.extra``; ValueError with one line when a value is bad."""
    keys = {str(f.alias) for f in model.model_fields.values()}
    given = {k: v for k, v in settings.extra.items() if k in keys and v != ""}
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        raise ValueError("; ".join(
            f"{PREFIX}{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False))) from None


def setting_rows(model: type[BaseModel]) -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for each field of a settings model, for README's table."""
    rows = []
    for f in model.model_fields.values():
        default = "" if f.is_required() or f.default in (None, "") else str(f.default)
        rows.append((PREFIX + str(f.alias).upper(), default, f.description or ""))
    return rows
