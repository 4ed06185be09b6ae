"""Training targets and losses for the centre-point detector (TTFNet-style).

Targets: every item puts a 2-D Gaussian (sigma proportional to its width/height) on the stride-4
heatmap with exactly 1.0 at its centre cell, and the cells under the central part of that
Gaussian regress the item's four sides, weighted by the Gaussian and by log(area) so small and
large items weigh alike. Where items overlap, the smaller one owns the cells (it is the one
that would otherwise vanish). Ignore boxes (half-visible items whose count is ambiguous) mask
the heatmap loss so the network is neither rewarded nor punished there.

Losses: penalty-reduced focal loss on the heatmap (CenterNet) + GIoU on the weighted cells.
"""

from __future__ import annotations

import numpy as np
import torch

from gateway.training.model import STRIDE

# Gaussian radius as a share of the box side (TTFNet's alpha) and the share of the box whose
# cells regress sides (beta): smaller than the box so cells near an edge, which see only part
# of the item, do not vote for its extent.
ALPHA = 0.54
BETA = 0.54


def build_targets(
    boxes: np.ndarray, ignore: np.ndarray, height: int, width: int
) -> dict[str, np.ndarray]:
    """Heatmap, ignore mask, box targets and regression weights for one image.

    ``boxes``/``ignore`` are ``[n, 4]`` float arrays (x0, y0, x1, y1) in image pixels.
    """
    oh, ow = height // STRIDE, width // STRIDE
    heat = np.zeros((oh, ow), np.float32)
    mask = np.ones((oh, ow), np.float32)
    box_t = np.zeros((4, oh, ow), np.float32)
    weight = np.zeros((oh, ow), np.float32)
    owner_area = np.full((oh, ow), np.inf, np.float32)
    for x0, y0, x1, y1 in ignore:
        gx0, gy0 = max(0, int(x0 // STRIDE)), max(0, int(y0 // STRIDE))
        gx1, gy1 = min(ow, int(np.ceil(x1 / STRIDE))), min(oh, int(np.ceil(y1 / STRIDE)))
        mask[gy0:gy1, gx0:gx1] = 0.0
    ys = (np.arange(oh, dtype=np.float32) + 0.5) * STRIDE
    xs = (np.arange(ow, dtype=np.float32) + 0.5) * STRIDE
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.argsort(-areas)
    for i in order:
        x0, y0, x1, y1 = (float(v) for v in boxes[i])
        w, h = x1 - x0, y1 - y0
        if w < 2 or h < 2:
            continue
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        ci = min(ow - 1, max(0, int(cx // STRIDE)))
        cj = min(oh - 1, max(0, int(cy // STRIDE)))
        sx, sy = max(ALPHA * w / 6, 0.8 * STRIDE / 3), max(ALPHA * h / 6, 0.8 * STRIDE / 3)
        # Gaussian centred on the centre *cell* so the peak is exactly 1 where decode looks.
        pcx, pcy = (ci + 0.5) * STRIDE, (cj + 0.5) * STRIDE
        gx0, gx1 = max(0, int((pcx - 3 * sx) // STRIDE)), min(ow, int((pcx + 3 * sx) // STRIDE) + 1)
        gy0, gy1 = max(0, int((pcy - 3 * sy) // STRIDE)), min(oh, int((pcy + 3 * sy) // STRIDE) + 1)
        gx = np.exp(-((xs[gx0:gx1] - pcx) ** 2) / (2 * sx * sx))
        gy = np.exp(-((ys[gy0:gy1] - pcy) ** 2) / (2 * sy * sy))
        g = gy[:, None] * gx[None, :]
        g[g < 1e-3] = 0.0
        heat[gy0:gy1, gx0:gx1] = np.maximum(heat[gy0:gy1, gx0:gx1], g)
        heat[cj, ci] = 1.0
        mask[cj, ci] = 1.0
        # Regression cells: the central BETA part of the box (at least the centre cell).
        bx = BETA * w / 2
        by = BETA * h / 2
        rx0, rx1 = max(0, int((cx - bx) // STRIDE)), min(ow, int((cx + bx) // STRIDE) + 1)
        ry0, ry1 = max(0, int((cy - by) // STRIDE)), min(oh, int((cy + by) // STRIDE) + 1)
        rx0, rx1 = min(rx0, ci), max(rx1, ci + 1)
        ry0, ry1 = min(ry0, cj), max(ry1, cj + 1)
        rgx = np.exp(-((xs[rx0:rx1] - cx) ** 2) / (2 * sx * sx))
        rgy = np.exp(-((ys[ry0:ry1] - cy) ** 2) / (2 * sy * sy))
        rg = rgy[:, None] * rgx[None, :]
        area = w * h
        own = area <= owner_area[ry0:ry1, rx0:rx1]
        rg = np.where(own, rg, 0.0)
        total = rg.sum()
        if total <= 0:
            continue
        sel = rg > 0
        wv = rg / total * np.log(max(area, 4.0))
        region = (slice(ry0, ry1), slice(rx0, rx1))
        weight[region] = np.where(sel, wv, weight[region])
        owner_area[region] = np.where(sel, area, owner_area[region])
        for k, v in enumerate((x0, y0, x1, y1)):
            box_t[k][region] = np.where(sel, v, box_t[k][region])
    return {"heat": heat, "mask": mask, "box": box_t, "weight": weight}


def focal_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of item centres."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = (target >= 1.0).float()
    neg = (1.0 - pos) * mask
    pos_loss = -torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = -torch.log(1 - p) * p**2 * (1 - target) ** 4 * neg
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


def giou_loss(
    sides: torch.Tensor, box_t: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """Weighted GIoU loss between predicted boxes (centre cell +/- sides) and their targets."""
    n, _, h, w = sides.shape
    sel = weight > 0
    if not bool(sel.any()):
        return sides.sum() * 0.0
    ys = (torch.arange(h, dtype=sides.dtype, device=sides.device) + 0.5) * STRIDE
    xs = (torch.arange(w, dtype=sides.dtype, device=sides.device) + 0.5) * STRIDE
    cy = ys.view(1, h, 1).expand(n, h, w)[sel]
    cx = xs.view(1, 1, w).expand(n, h, w)[sel]
    d = sides.permute(0, 2, 3, 1)[sel]
    t = box_t.permute(0, 2, 3, 1)[sel]
    px0, py0, px1, py1 = cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]
    tx0, ty0, tx1, ty1 = t.unbind(1)
    inter = (torch.min(px1, tx1) - torch.max(px0, tx0)).clamp(min=0) * (
        torch.min(py1, ty1) - torch.max(py0, ty0)
    ).clamp(min=0)
    pa = (px1 - px0) * (py1 - py0)
    ta = (tx1 - tx0) * (ty1 - ty0)
    union = pa + ta - inter + 1e-6
    hull = (torch.max(px1, tx1) - torch.min(px0, tx0)) * (torch.max(py1, ty1) - torch.min(py0, ty0))
    giou = inter / union - (hull - union) / (hull + 1e-6)
    wv = weight[sel]
    return ((1 - giou) * wv).sum() / wv.sum().clamp(min=1e-6)
