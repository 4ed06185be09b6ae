// One bin's stock over time as plain SVG: the counts, the forecast from the last count with
// its 80 % band, and the reorder point. Plain SVG instead of a charting library: one small
// chart needs a few lines and polygons, not a dependency.

const NS = "http://www.w3.org/2000/svg";
const DAY_MS = 86400000;

function node(name, attrs = {}, text = null) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== null) e.textContent = text;
  return e;
}

// The projected stock from the last count: on hand minus demand per day, never below zero.
function projection(last, daily, days) {
  const out = [];
  for (let d = 0; d <= days; d += 1) out.push([last.t + d * DAY_MS, Math.max(0, last.q - daily * d)]);
  return out;
}

export function stockChart(data, { width = 640, height = 240, horizon = 28 } = {}) {
  const counts = data.counts.map(([day, q]) => ({ t: Date.parse(day), q }));
  const svg = node("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart",
    "aria-label": `Stock of ${data.sku} at ${data.location}: ${counts.length} counts`
      + (data.forecast ? `, ${data.forecast.Daily_Demand} a day forecast` : "") });
  if (!counts.length) return svg;
  const f = data.forecast;
  const last = counts[counts.length - 1];
  const mid = f && f.Daily_Demand !== "" ? projection(last, f.Daily_Demand, horizon) : [];
  const low = f && f.Demand_Low !== "" ? projection(last, f.Demand_Low, horizon) : [];
  const high = f && f.Demand_High !== "" ? projection(last, f.Demand_High, horizon) : [];
  const t0 = counts[0].t;
  const t1 = Math.max(last.t + (mid.length ? horizon * DAY_MS : DAY_MS), t0 + DAY_MS);
  const rop = f && f.Reorder_Point !== "" ? Number(f.Reorder_Point) : null;
  const qMax = Math.max(1, rop || 0, ...counts.map((c) => c.q));
  const pad = { l: 44, r: 10, t: 10, b: 24 };
  const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (width - pad.l - pad.r);
  const y = (q) => height - pad.b - (q / qMax) * (height - pad.t - pad.b);
  const pts = (list) => list.map(([t, q]) => `${x(t).toFixed(1)},${y(q).toFixed(1)}`).join(" ");
  svg.append(node("line", { x1: pad.l, y1: y(0), x2: width - pad.r, y2: y(0), class: "axis" }));
  svg.append(node("text", { x: 4, y: y(qMax) + 4, class: "tick" }, String(Math.round(qMax))));
  svg.append(node("text", { x: 4, y: y(0), class: "tick" }, "0"));
  svg.append(node("text", { x: pad.l, y: height - 6, class: "tick" },
    new Date(t0).toISOString().slice(0, 10)));
  svg.append(node("text", { x: width - pad.r, y: height - 6, class: "tick", "text-anchor": "end" },
    new Date(t1).toISOString().slice(0, 10)));
  if (low.length && high.length) {
    svg.append(node("polygon", { class: "band", points: `${pts(low)} ${pts([...high].reverse())}` }));
  }
  if (mid.length) svg.append(node("polyline", { class: "forecast", points: pts(mid) }));
  if (rop !== null) {
    svg.append(node("line", { class: "rop", x1: pad.l, x2: width - pad.r, y1: y(rop), y2: y(rop) }));
    svg.append(node("text", { class: "tick", x: width - pad.r, y: y(rop) - 4, "text-anchor": "end" },
      `reorder point ${Math.round(rop)}`));
  }
  svg.append(node("polyline", { class: "counted", points: pts(counts.map((c) => [c.t, c.q])) }));
  for (const c of counts) svg.append(node("circle", { class: "count", cx: x(c.t), cy: y(c.q), r: 3 }));
  return svg;
}
