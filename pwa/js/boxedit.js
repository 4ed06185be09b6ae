// Fixing the item boxes with a thumb (issue 15): in "Fix boxes" mode a tap on a box takes it
// out, a tap on empty picture adds a box there sized like its neighbours (and named like the
// nearest one), a box's corner dragged resizes it; Undo takes back the last change; Save queues the complete set like a photo
// (IndexedDB outbox, sent once, survives a reload). Line quantities follow the boxes at once.
import { fitTransform } from "./draw.js";

// Picture pixels of a point on the canvas that shows the picture with `fit` (inverse of
// drawBoxes), and how many CSS pixels one picture pixel takes there (`scale`).
export function pointToPicture(canvas, event, srcW, srcH, picW, picH, fit) {
  const r = canvas.getBoundingClientRect();
  const t = fitTransform(picW || srcW, picH || srcH, r.width, r.height, fit);
  const kx = (picW || srcW) / srcW;
  const ky = (picH || srcH) / srcH;
  return { x: (event.clientX - r.left - t.ox) / (t.s * kx),
    y: (event.clientY - r.top - t.oy) / (t.s * ky), scale: t.s * kx };
}

// A tap in picture pixels, or null when it fell outside the picture (on the letterbox).
export function tapToPicture(canvas, event, srcW, srcH, picW, picH, fit) {
  const p = pointToPicture(canvas, event, srcW, srcH, picW, picH, fit);
  return p.x >= 0 && p.y >= 0 && p.x <= srcW && p.y <= srcH ? p : null;
}

// How close (CSS pixels) a thumb must land to a box corner to drag it: about a fingertip.
export const CORNER_GRAB_PX = 22;

// The box corner nearest (x, y) within `radius` picture pixels, as {index, corner}, or null.
// Corners: 0 top-left, 1 top-right, 2 bottom-right, 3 bottom-left.
export function cornerAt(boxes, x, y, radius) {
  let best = null;
  let bestD = radius;
  boxes.forEach((b, index) => {
    [[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]].forEach(([cx, cy], corner) => {
      const d = Math.hypot(cx - x, cy - y);
      if (d <= bestD) [bestD, best] = [d, { index, corner }];
    });
  });
  return best;
}

const tenth = (v) => Math.round(v * 10) / 10;

// The box with one corner moved to (x, y): inside the picture, never flipped, at least `min`
// picture pixels wide and high (the gateway refuses empty boxes).
export function moveCorner(box, corner, x, y, srcW, srcH, min = 4) {
  let [x0, y0, x1, y1] = box;
  const cx = Math.max(0, Math.min(srcW, x));
  const cy = Math.max(0, Math.min(srcH, y));
  if (corner === 0 || corner === 3) x0 = Math.min(cx, x1 - min);
  else x1 = Math.max(cx, x0 + min);
  if (corner === 0 || corner === 1) y0 = Math.min(cy, y1 - min);
  else y1 = Math.max(cy, y0 + min);
  return [tenth(x0), tenth(y0), tenth(x1), tenth(y1), box[4]];
}

function median(values) {
  const v = [...values].sort((a, b) => a - b);
  return v.length ? v[Math.floor(v.length / 2)] : 0;
}

// The boxes after a tap at (x, y): [boxes, what changed] or null when nothing did.
export function tapBoxes(boxes, x, y, srcW, srcH) {
  const hit = boxes.findIndex((b) => x >= b[0] && x <= b[2] && y >= b[1] && y <= b[3]);
  if (hit >= 0) return [boxes.filter((_, i) => i !== hit), "removed"];
  const w = median(boxes.map((b) => b[2] - b[0])) || srcW / 8;
  const h = median(boxes.map((b) => b[3] - b[1])) || srcH / 6;
  let sku = "";
  let best = Infinity;
  for (const b of boxes) {
    const d = Math.hypot((b[0] + b[2]) / 2 - x, (b[1] + b[3]) / 2 - y);
    if (d < best) [best, sku] = [d, b[4]];
  }
  const x0 = Math.max(0, Math.min(srcW - w, x - w / 2));
  const y0 = Math.max(0, Math.min(srcH - h, y - h / 2));
  const box = [x0, y0, Math.min(srcW, x0 + w), Math.min(srcH, y0 + h), sku];
  return [[...boxes, box.map((v) => (typeof v === "number" ? tenth(v) : v))], "added"];
}

// Items per SKU in a box set ("" = unnamed).
export function boxCounts(boxes) {
  const out = new Map();
  for (const b of boxes) out.set(b[4], (out.get(b[4]) || 0) + 1);
  return out;
}

// The result's boxes as the 5-field form the gateway takes: [x0, y0, x1, y1, sku].
export function editableBoxes(result) {
  return (result.boxes || []).map((b) => [b[0], b[1], b[2], b[3], b[5] || ""]);
}
