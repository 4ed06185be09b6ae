"""`make bench-audit`: the shelf audit on generated planned bays with known faults.

Each bay (gateway.training.scene_bays) comes with its planogram and every true finding. The
bays are counted through the real pipeline and the embedded Triton with the planogram loaded,
and the findings are scored: gap recall and precision (a found gap matches a true one at
IoU >= 0.3), misplaced-item recall (over items whose code or label is legible) and precision,
bays whose missing SKUs are exactly right (and extra SKUs: every one with a legible item found,
none that is not there), and the time the audit adds to a
photo's count (p50/p95). Printed and written to artifacts/bench-audit.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gateway.catalog import Catalog
from gateway.config import REPO_ROOT, load_settings
from gateway.inference.client import InferenceClient
from gateway.inference.embedded import start_triton
from gateway.pipeline.run import Pipeline
from gateway.planogram import Planogram
from gateway.training.scene_bays import PlannedBay, TruthFinding, render_planned_bay
from gateway.training.scenes import encode_jpeg

GAP_IOU = 0.3
ITEM_IOU = 0.5


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _matches(found: list[Sequence[float]], true: list[Sequence[float]],
             threshold: float) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs (found, true) by IoU, best first."""
    pairs = sorted(((iou(f, t), i, j) for i, f in enumerate(found) for j, t in enumerate(true)),
                   reverse=True)
    used_f: set[int] = set()
    used_t: set[int] = set()
    out = []
    for v, i, j in pairs:
        if v < threshold:
            break
        if i not in used_f and j not in used_t:
            used_f.add(i)
            used_t.add(j)
            out.append((i, j))
    return out


@dataclass
class Score:
    """Tallies over bays; ``report`` turns them into the benchmark's figures."""

    gaps_true: int = 0
    gaps_found: int = 0
    gaps_matched_true: int = 0
    gaps_matched_found: int = 0
    mis_legible: int = 0
    mis_legible_found: int = 0
    mis_found: int = 0
    mis_found_right: int = 0
    bays: int = 0
    missing_exact: int = 0
    extra_exact: int = 0
    audit_ms: list[float] = field(default_factory=list)

    def add(self, findings: list[dict], truth: list[TruthFinding]) -> None:
        self.bays += 1
        fg = [f["box"] for f in findings if f["type"] == "gap"]
        tg = [t.box for t in truth if t.type == "gap" and t.box]
        pairs = _matches(fg, tg, GAP_IOU)
        self.gaps_true += len(tg)
        self.gaps_found += len(fg)
        self.gaps_matched_true += len(pairs)
        self.gaps_matched_found += len(pairs)
        fm = [f for f in findings if f["type"] == "misplaced"]
        tm = [t for t in truth if t.type == "misplaced" and t.box]
        pairs = [(i, j) for i, j in _matches([f["box"] for f in fm], [t.box for t in tm],
                                             ITEM_IOU) if fm[i]["sku"] == tm[j].sku]
        self.mis_found += len(fm)
        self.mis_found_right += len(pairs)
        self.mis_legible += sum(t.legible for t in tm)
        self.mis_legible_found += sum(tm[j].legible for _, j in pairs)
        found = {f["expected_sku"] for f in findings if f["type"] == "missing"}
        missing = [t for t in truth if t.type == "missing"]
        self.missing_exact += {t.expected_sku for t in missing if t.legible} <= found \
            <= {t.expected_sku for t in missing}
        # an extra SKU must be found where one of its items is legible, may be where none is
        found = {f["sku"] for f in findings if f["type"] == "extra"}
        extra = [t for t in truth if t.type == "extra"]
        self.extra_exact += {t.sku for t in extra if t.legible} <= found <= {t.sku for t in extra}

    def report(self) -> dict[str, object]:
        def ratio(a: int, b: int) -> float | None:
            return round(a / b, 3) if b else None

        ms = np.array(self.audit_ms or [0.0])
        return {
            "bays": self.bays,
            "gap_recall": ratio(self.gaps_matched_true, self.gaps_true),
            "gap_precision": ratio(self.gaps_matched_found, self.gaps_found),
            "gaps_true": self.gaps_true, "gaps_found": self.gaps_found,
            "misplaced_recall_legible": ratio(self.mis_legible_found, self.mis_legible),
            "misplaced_precision": ratio(self.mis_found_right, self.mis_found),
            "misplaced_legible": self.mis_legible, "misplaced_found": self.mis_found,
            "missing_exact_bays": ratio(self.missing_exact, self.bays),
            "extra_exact_bays": ratio(self.extra_exact, self.bays),
            "audit_ms_p50": round(float(np.percentile(ms, 50)), 2),
            "audit_ms_p95": round(float(np.percentile(ms, 95)), 2),
        }


def audit_pipeline(settings, client: InferenceClient, catalog: Catalog,
                   bays: Sequence[PlannedBay]) -> Pipeline:
    """A pipeline whose planogram holds every bay's plan."""
    slots = [s for bay in bays for s in bay.plan]
    return Pipeline(settings, client, catalog, planogram=Planogram(slots))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bays", type=int, default=200, help="generated bays (default 200)")
    # the audit was tuned on seeds 9100-9299; the benchmark's bays are others
    p.add_argument("--seed", type=int, default=20000, help="first bay's seed (default 20000)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "artifacts" / "bench-audit.json")
    args = p.parse_args(argv)
    settings = load_settings()
    catalog = Catalog.from_csv(REPO_ROOT / "gateway" / "demo" / "catalog.csv")
    url, server = start_triton(settings)
    client = InferenceClient(url, timeout_s=60)
    score = Score()
    try:
        for i in range(args.bays):
            # one bay per location at a time: the planogram holds this bay's plan only
            bay = render_planned_bay(args.seed + i)
            pipeline = audit_pipeline(settings, client, catalog, [bay])
            result = pipeline.count(encode_jpeg(bay.scene, 90))
            pipeline.close()
            score.add(result.findings, bay.truth)
            score.audit_ms.append(result.timings_ms.get("audit", 0.0))
            if (i + 1) % 20 == 0:
                print(f"{i + 1}/{args.bays} bays: {score.report()}", file=sys.stderr)
    finally:
        client.close()
        if server is not None:
            server.stop()
    report = {"data": f"{args.bays} generated planned bays, seeds {args.seed}.."
                      f"{args.seed + args.bays - 1}, 2048x1536", **score.report()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
