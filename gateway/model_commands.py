"""``shelfcount model list | promote N [--force] | rollback``: the item detector's versions.

These commands change files only (see gateway.inference.versions); a running gateway notices
the new live version within ``SHELFCOUNT_MODEL_POLL_S`` and has Triton load it.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from gateway.config import Settings
from gateway.inference.versions import DetectorVersions, VersionError, VersionInfo


def add_parser(sub: Any) -> None:
    """The ``model`` subcommand and its actions."""
    m = sub.add_parser("model", help="item detector versions: list, promote, roll back")
    m_sub = m.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    ls = m_sub.add_parser("list", help="versions, their held-out figures, which one is live")
    ls.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    pr = m_sub.add_parser("promote", help="make version N live (the running gateway serves it "
                          "within SHELFCOUNT_MODEL_POLL_S, no restart)")
    pr.add_argument("version", type=int)
    pr.add_argument("--force", action="store_true", help="promote even a candidate that "
                    "counted worse than the live model on the held-out slice")
    m_sub.add_parser("rollback", help="make the version that was live before this one live")


def _by() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _summary(info: VersionInfo) -> dict[str, Any]:
    held = info.heldout or {}
    cand, cur = held.get("candidate") or {}, held.get("current") or {}
    return {"version": info.number, "live": info.live, "created": info.meta.get("created"),
            "parent": info.meta.get("parent"), "steps": info.meta.get("steps"),
            "threshold": info.meta.get("threshold"),
            "heldout": {"photos": cur.get("n"), "compared_with": held.get("current_version"),
                        "right": cand.get("right"), "mae": cand.get("mae"),
                        "parent_right": cur.get("right"), "parent_mae": cur.get("mae")}
            if held else None,
            "real_val_right": (info.meta.get("real_val") or {}).get("right")}


def _pct(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, int | float) else "-"


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'':2}{'version':>7}  {'created':<20}  {'parent':>6}  "
             f"{'held-out right':>14}  {'parent then':>11}  {'photos':>6}"]
    for r in rows:
        h = r["heldout"] or {}
        lines.append(f"{'*' if r['live'] else ' ':2}{r['version']:>7}  "
                     f"{r['created'] or '-':<20}  {r['parent'] or '-':>6}  "
                     f"{_pct(h.get('right')):>14}  {_pct(h.get('parent_right')):>11}  "
                     f"{h.get('photos') or '-':>6}")
    lines.append("* live")
    return "\n".join(lines)


def model_main(args: argparse.Namespace, settings: Settings) -> int:
    """Run one ``model`` action; errors are one line on stderr and exit status 2."""
    versions = DetectorVersions(settings.model_repository)
    try:
        match args.model_command:
            case "list":
                rows = [_summary(v) for v in versions.versions()]
                if not rows:
                    raise VersionError(f"no detector versions in {versions.folder}")
                print(json.dumps({"live": versions.live(), "versions": rows}, indent=1)
                      if args.json else _table(rows))
            case "promote":
                old = versions.promote(args.version, force=args.force, by=_by())
                print(f"version {args.version} is live (was {old}); a running gateway serves "
                      f"it within {settings.model_poll_s:g} s")
            case "rollback":
                old, new = versions.rollback(by=_by())
                print(f"version {new} is live again (was {old}); a running gateway serves it "
                      f"within {settings.model_poll_s:g} s")
    except (VersionError, OSError) as exc:
        print(f"shelfcount model: {exc}", file=sys.stderr)
        return 2
    return 0
