// Drawing boxes over a picture shown with CSS object-fit (contain for the live video and the
// result photo: the whole counted frame is shown; cover is kept for other media). Boxes arrive in pixels of the picture the gateway counted (result width /
// height), so they are normalised first and then mapped onto the element's box.

const PALETTE = ["#ffcc00", "#4cc9f0", "#f72585", "#80ed99", "#ff9f1c", "#b388ff", "#ff5d5d",
  "#2ec4b6", "#e9ff70", "#ffafcc"];

export function skuColour(sku) {
  if (!sku) return "#9aa4ad";
  let h = 0;
  for (const ch of String(sku)) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

// Map from source picture pixels (sw x sh) to the element's CSS pixels (ew x eh).
export function fitTransform(sw, sh, ew, eh, fit) {
  const s = fit === "cover" ? Math.max(ew / sw, eh / sh) : Math.min(ew / sw, eh / sh);
  return { s, ox: (ew - sw * s) / 2, oy: (eh - sh * s) / 2 };
}

// Size a canvas to its CSS box at device pixel ratio; returns the 2D context in CSS pixels.
export function prepCanvas(canvas) {
  const r = canvas.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(r.width * dpr));
  const h = Math.max(1, Math.round(r.height * dpr));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, r.width, r.height);
  return { ctx, w: r.width, h: r.height };
}

// The shelf audit's findings (gateway.pipeline.audit): one colour per kind, the same in the
// legend; dashed so they never pass for an item box.
export const FINDING_STYLE = {
  gap: { colour: "#ff453a", label: "Empty gap" },
  misplaced: { colour: "#ff9f0a", label: "Misplaced" },
  missing: { colour: "#bf5af2", label: "Missing SKU" },
  extra: { colour: "#64d2ff", label: "Unplanned SKU" },
};

// findings: [{type, box:[x0,y0,x1,y1], ...}] in the (srcW x srcH) picture; drawn over what
// drawBoxes left on the canvas (it does not clear it). Returns how many were drawn.
export function drawFindings(canvas, findings, srcW, srcH, picW, picH, fit) {
  if (!findings || !findings.length || !srcW || !srcH) return 0;
  const r = canvas.getBoundingClientRect();
  const ctx = canvas.getContext("2d");
  const t = fitTransform(picW || srcW, picH || srcH, r.width, r.height, fit);
  const kx = ((picW || srcW) / srcW) * t.s;
  const ky = ((picH || srcH) / srcH) * t.s;
  ctx.save();
  ctx.lineWidth = 3;
  ctx.setLineDash([8, 5]);
  for (const f of findings) {
    const style = FINDING_STYLE[f.type];
    if (!style || !f.box) continue;
    const [x0, y0, x1, y1] = f.box;
    const X = t.ox + x0 * kx;
    const Y = t.oy + y0 * ky;
    ctx.strokeStyle = style.colour;
    ctx.strokeRect(X, Y, (x1 - x0) * kx, (y1 - y0) * ky);
    if (f.type === "gap") {
      ctx.fillStyle = `${style.colour}33`;
      ctx.fillRect(X, Y, (x1 - x0) * kx, (y1 - y0) * ky);
    }
  }
  ctx.restore();
  return findings.length;
}

// boxes: [[x0,y0,x1,y1,score,sku], ...] in a (srcW x srcH) picture; the picture is shown as
// (picW x picH) media (video or image natural size; same aspect as src) with the given fit.
export function drawBoxes(canvas, boxes, srcW, srcH, picW, picH, fit, opts = {}) {
  const { ctx, w, h } = prepCanvas(canvas);
  if (!boxes || !srcW || !srcH) return 0;
  const t = fitTransform(picW || srcW, picH || srcH, w, h, fit);
  const kx = (picW || srcW) / srcW;
  const ky = (picH || srcH) / srcH;
  ctx.lineWidth = opts.lineWidth || 2.5;
  ctx.font = "bold 13px system-ui, sans-serif";
  let n = 0;
  for (const b of boxes) {
    const [x0, y0, x1, y1, , sku] = b;
    const X = t.ox + x0 * kx * t.s;
    const Y = t.oy + y0 * ky * t.s;
    const W = (x1 - x0) * kx * t.s;
    const H = (y1 - y0) * ky * t.s;
    const c = skuColour(sku);
    ctx.strokeStyle = c;
    ctx.strokeRect(X, Y, W, H);
    if (opts.handles) { // corners a thumb can drag while fixing boxes
      ctx.fillStyle = c;
      for (const [hx, hy] of [[X, Y], [X + W, Y], [X + W, Y + H], [X, Y + H]]) {
        ctx.fillRect(hx - 4, hy - 4, 8, 8);
      }
    }
    if (opts.numbers) {
      n += 1;
      const label = String(n);
      const tw = ctx.measureText(label).width + 6;
      ctx.fillStyle = c;
      ctx.fillRect(X, Y, tw, 16);
      ctx.fillStyle = "#000";
      ctx.fillText(label, X + 3, Y + 12);
    }
  }
  return boxes.length;
}
