"""``make bench-learning``: the learning curve of walkers' box corrections.

A warehouse the shipped detector has never seen: the family fold of
../shared/data/real-cartons/train that shipping holds out (it only chose the threshold). Its
photo families are split in two: a pool that walkers "correct" and the rest, counted at each
point (split by family so that no counted photo is a neighbouring video frame of a corrected
one). Starting from the shipped model, the labels of the first 10, 25, 50 and 100 pool photos
go in as corrections through the REST contract (POST /api/v1/counts, then PUT
/api/v1/counts/{count_id}/boxes) on a real gateway with embedded Triton, ``shelfcount train
--from-store`` runs with its default steps (as a separate process, its CPU time measured), and
the candidate it writes counts the rest and a slice of the synthetic test set.

Results go to data/bench/learning.json and, as a table, to standard output. An interrupted run
resumes (data/bench/learning-run/ keeps the store, the candidates and the figures so far).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

from gateway.config import REPO_ROOT, load_settings
from gateway.training.data import load_labelled_dir
from gateway.training.evaluate import EvalImage, collect, count_metrics
from gateway.training.real import REAL_CARTONS, TUNE_FOLD, family, fold_of

POINTS = (10, 25, 50, 100)
PER_FAMILY = 30  # counted photos per family at most: one long video must not decide the share
MAX_REST = 200
SYNTHETIC_TEST = 200
OUT = REPO_ROOT / "data" / "bench" / "learning.json"


def _key(text: str) -> bytes:
    return hashlib.sha1(text.encode()).digest()


def warehouse_split(pairs: list) -> tuple[list, list]:
    """(pool in correction order, rest to count) from the held-out fold, split by family."""
    fams: dict[str, list] = {}
    for p in pairs:
        if fold_of(p[0]) == TUNE_FOLD:
            fams.setdefault(family(p[0]), []).append(p)
    # The two largest families (a long video, a capture series) go one to each side; the
    # others alternate in hash order.
    by_size = sorted(fams, key=lambda f: (-len(fams[f]), _key(f)))
    pool_fams, rest_fams = [by_size[0]], by_size[1:2]
    for i, name in enumerate(sorted(by_size[2:], key=_key)):
        (pool_fams if i % 2 == 0 else rest_fams).append(name)
    # Corrections come in round-robin over the pool's families (walkers see many bays).
    queues = [sorted(fams[f], key=lambda p: _key(str(p[0]))) for f in pool_fams]
    pool = [q[i] for i in range(max(map(len, queues))) for q in queues if i < len(q)]
    rest = _capped([p for f in rest_fams for p in fams[f]])
    return pool, rest


def _capped(pairs: list) -> list:
    """At most PER_FAMILY evenly spaced photos of each family, MAX_REST in all."""
    fams: dict[str, list] = {}
    for p in pairs:
        fams.setdefault(family(p[0]), []).append(p)
    out = []
    for members in fams.values():
        members = sorted(members, key=lambda p: str(p[0]))
        idx = np.linspace(0, len(members) - 1, min(len(members), PER_FAMILY))
        out += [members[i] for i in sorted({int(round(v)) for v in idx})]
    return sorted(out, key=lambda p: _key(str(p[0])))[:MAX_REST]


def _evaluate(onnx: Path, images: list[EvalImage], threshold: float) -> dict[str, Any]:
    from gateway.training.shipping import LocalDetector

    cands, truth = collect(images, LocalDetector(onnx, 2), len(images), quiet=True)
    m = count_metrics(cands, [len(t.boxes) for t in truth], threshold)
    return {k: m[k] for k in ("n", "right", "within1", "exact", "mae", "bias")}


def _real_images(pairs: list) -> list[EvalImage]:
    from gateway.training.shipping import eval_from_pairs

    return list(eval_from_pairs(pairs))


def _synthetic_images(n: int) -> list[EvalImage]:
    from gateway.training.synth import TEST_SEED, eval_images

    return list(eval_images(TEST_SEED, n))


def _correct(base: str, token: str, pairs: list) -> None:
    """Each photo counted by the gateway, then its labelled boxes PUT as the correction."""
    head = {"Authorization": f"Bearer {token}"}
    for path, boxes in pairs:
        with open(path, "rb") as handle:
            posted = requests.post(f"{base}/api/v1/counts", headers=head, timeout=300,
                                   files={"photo": (path.name, handle, "image/jpeg")})
        posted.raise_for_status()
        result = posted.json()
        # As a walker draws them: inside the photo, none degenerate (polygon-derived labels
        # can poke a pixel out or collapse).
        limit = np.array([result["width"], result["height"]] * 2, np.float64)
        clipped = np.clip(np.asarray(boxes, np.float64)[:, :4], 0, limit).reshape(-1, 4)
        keep = (clipped[:, 2] - clipped[:, 0] >= 1) & (clipped[:, 3] - clipped[:, 1] >= 1)
        body = {"boxes": [[*map(float, b), ""] for b in clipped[keep]]}
        put = requests.put(f"{base}/api/v1/counts/{result['count_id']}/boxes",
                           json=body, headers=head, timeout=60)
        if put.status_code != 200:
            raise SystemExit(f"{path.name}: PUT boxes answered {put.status_code}: {put.text}")


def _fine_tune(data_dir: Path, repo: Path, steps: int | None) -> tuple[int, float, float, str]:
    """``train --from-store`` as its own process: (version, CPU s, wall s, its stdout)."""
    env = dict(os.environ, SHELFCOUNT_MODEL_REPOSITORY=str(repo))
    cmd = [sys.executable, "-m", "gateway.cli", "train", "--from-store", "--data-dir",
           str(data_dir), "--quiet"] + (["--steps", str(steps)] if steps else [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"train --from-store failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    last = done.stdout.strip().splitlines()[-1]
    return int(last.split()[1]), cpu, wall, done.stdout


def _point(name: str, onnx: Path, sets: tuple[list, list, list],
           thr: float) -> dict[str, Any]:
    t0 = time.monotonic()
    rest, whole, synth = sets
    out = {"name": name, "rest": _evaluate(onnx, rest, thr),
           "uncorrected": _evaluate(onnx, whole, thr),
           "synthetic": _evaluate(onnx, synth, thr)}
    out["eval_wall_s"] = round(time.monotonic() - t0, 1)
    print(f"{name}: rest right {out['rest']['right']:.1%} MAE {out['rest']['mae']:.2f}; "
          f"all uncorrected right {out['uncorrected']['right']:.1%}; "
          f"synthetic right {out['synthetic']['right']:.1%}", file=sys.stderr, flush=True)
    return out


def _table(results: dict[str, Any]) -> str:
    lines = ["| corrected photos | right, other families | MAE | right, all uncorrected | "
             "MAE | synthetic right | fine-tune CPU s | wall s |",
             "|---|---|---|---|---|---|---|---|"]
    for p in results["points"]:
        tune = p.get("fine_tune", {})
        lines.append(f"| {p['corrected']} | {p['rest']['right']:.1%} | {p['rest']['mae']:.2f} "
                     f"| {p['uncorrected']['right']:.1%} | {p['uncorrected']['mae']:.2f} "
                     f"| {p['synthetic']['right']:.1%} | {tune.get('cpu_s', 0):.0f} "
                     f"| {tune.get('wall_s', 0):.0f} |")
    return "\n".join(lines)


def _resume(work: Path, params: dict[str, Any]) -> dict[str, Any]:
    """The state of an interrupted run with the same parameters, else a fresh work folder
    (a copy of the model repository: candidate versions are written there, not here)."""
    try:
        state = json.loads((work / "state.json").read_text())
        if state.get("params") == params:
            print(f"resuming: {state['done']} photos already corrected", file=sys.stderr)
            return state
    except (OSError, ValueError):
        pass
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copytree(REPO_ROOT / "triton_models", work / "triton_models",
                    ignore=shutil.ignore_patterns("[2-9]", "[1-9][0-9]*", "promotions.jsonl",
                                                  ".lock", ".candidate-*"))
    return {"params": params, "done": 0, "results": None}


def _save(work: Path, params: dict[str, Any], done: int, results: dict[str, Any]) -> None:
    tmp = work / "state.json.tmp"
    tmp.write_text(json.dumps({"params": params, "done": done, "results": results}))
    tmp.replace(work / "state.json")


def run(steps: int | None, points: tuple[int, ...], n_rest: int = MAX_REST,
        n_synthetic: int = SYNTHETIC_TEST) -> dict[str, Any]:
    from gateway.inference.embedded import EmbeddedTriton
    from tests.server_support import new_token, running_gateway

    pool, rest_pairs = warehouse_split(load_labelled_dir(REAL_CARTONS / "train"))
    rest_pairs = rest_pairs[:n_rest]
    # Every warehouse photo no point corrects: the other families and the pool's remainder
    # (the same videos and series as corrected photos, as a warehouse's next round would be).
    uncorrected = _capped(pool[max(points):] + rest_pairs)[:n_rest]
    print(f"warehouse: {len(pool)} photos to correct, {len(rest_pairs)} to count",
          file=sys.stderr, flush=True)
    rest, synth = _real_images(rest_pairs), _synthetic_images(n_synthetic)
    whole = _real_images(uncorrected)
    work = OUT.parent / "learning-run"
    params = {"steps": steps, "points": list(points), "rest": len(rest), "whole": len(whole),
              "synthetic": len(synth)}
    state = _resume(work, params)
    repo = work / "triton_models"
    thr = float(json.loads((repo / "item_detector" / "1" / "meta.json").read_text())["threshold"])
    results = state["results"] or {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs", "threshold": thr, "pool": len(pool),
        "rest_photos": len(rest), "uncorrected_photos": len(whole),
        "synthetic_photos": len(synth), "points": []}
    sets = (rest, whole, synth)
    if not results["points"]:
        base = _point("shipped", repo / "item_detector" / "1" / "model.onnx", sets, thr)
        results["points"].append({"corrected": 0, **base})
        _save(work, params, state["done"], results)
    finished = {p["corrected"] for p in results["points"]}
    settings = load_settings(env={}, model_repository=repo)
    with EmbeddedTriton(settings.model_repository) as triton:
        data = work / "data"
        # No rate limit: the bench feeds a hundred corrections as fast as they are counted.
        with running_gateway(data, triton.url, model_repository=repo,
                             photo_rate_per_min=1e6) as gw:
            token = new_token(data, f"bench-walker-{os.getpid()}")
            for k in (k for k in points if k not in finished):
                if state["done"] < k:
                    _correct(gw.base_url, token, pool[state["done"]:k])
                    state["done"] = k
                    _save(work, params, k, results)
                version, cpu, wall, report = _fine_tune(data, repo, steps)
                onnx = repo / "item_detector" / str(version) / "model.onnx"
                point = _point(f"{k} corrected (v{version})", onnx, sets, thr)
                point.update(corrected=k, version=version, heldout_report=report,
                             fine_tune={"cpu_s": round(cpu, 1), "wall_s": round(wall, 1)})
                results["points"].append(point)
                _save(work, params, k, results)
                OUT.write_text(json.dumps(results, indent=1) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, help="fine-tune steps (default: train's default)")
    ap.add_argument("--points", default=",".join(map(str, POINTS)),
                    help="corrected-photo counts, comma separated (default 10,25,50,100)")
    ap.add_argument("--rest", type=int, default=MAX_REST,
                    help=f"warehouse photos counted at each point, at most ({MAX_REST})")
    ap.add_argument("--synthetic", type=int, default=SYNTHETIC_TEST,
                    help=f"synthetic test photos counted at each point ({SYNTHETIC_TEST})")
    args = ap.parse_args(argv)
    if not (REAL_CARTONS / "train" / "images").is_dir():
        print(f"bench-learning: no real photos at {REAL_CARTONS}/train (shared data absent): "
              "skipped")
        return 0
    points = tuple(int(v) for v in args.points.split(","))
    results = run(args.steps, points, args.rest, args.synthetic)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1) + "\n")
    print(_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
