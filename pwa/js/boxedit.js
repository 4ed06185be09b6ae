// Fixing the item boxes with a thumb (issue 15): in "Fix boxes" mode a tap on a box takes it
// out, a tap on empty picture adds a box there sized like its neighbours (and named like the
// nearest one); Undo takes back the last change; Save queues the complete set like a photo
// (IndexedDB outbox, sent once, survives a reload). Line quantities follow the boxes at once.
import { fitTransform } from "./draw.js";

// Picture pixels of a tap on the canvas that shows the picture with `fit` (inverse of drawBoxes).
export function tapToPicture(canvas, event, srcW, srcH, picW, picH, fit) {
  const r = canvas.getBoundingClientRect();
  const t = fitTransform(picW || srcW, picH || srcH, r.width, r.height, fit);
  const kx = (picW || srcW) / srcW;
  const ky = (picH || srcH) / srcH;
  const x = (event.clientX - r.left - t.ox) / (t.s * kx);
  const y = (event.clientY - r.top - t.oy) / (t.s * ky);
  return x >= 0 && y >= 0 && x <= srcW && y <= srcH ? { x, y } : null;
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
  return [[...boxes, box.map((v) => (typeof v === "number" ? Math.round(v * 10) / 10 : v))],
    "added"];
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
