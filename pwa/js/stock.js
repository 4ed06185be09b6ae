// Manager stock screen: what to order now (approve into the ERP or dismiss), what was ordered
// and whether the ERP has it, stock alerts, and one bin's chart of counts and forecast.

import { stockChart } from "./chart.js";

const ERP_WORDS = {
  sent: "in the ERP", pending: "going to the ERP", failed: "ERP refused: retrying",
  not_configured: "no ERP set up",
};

function facts(f) {
  const parts = [`${f.On_Hand} on hand`];
  if (f.Daily_Demand !== "" && f.Daily_Demand !== null) parts.push(`${f.Daily_Demand} a day`);
  if (f.Days_Until_Stockout !== "" && f.Days_Until_Stockout !== null) {
    parts.push(`out in ${f.Days_Until_Stockout} days`);
  }
  if (f.Reorder_Point !== "" && f.Reorder_Point !== null) parts.push(`reorder point ${f.Reorder_Point}`);
  return parts.join(" · ");
}

export class StockScreen {
  // api(path, init): JSON from /api/v1; el(tag, attrs, ...kids): an element; toast(text).
  constructor({ api, el, toast, $ }) {
    Object.assign(this, { api, el, toast, $ });
  }

  async render() {
    const msg = this.$("stock-msg");
    msg.textContent = "Loading...";
    let orders;
    let alerts;
    try {
      [orders, alerts] = await Promise.all([this.api("reorder-suggestions?state=all"),
        this.api("stock-alerts")]);
    } catch (e) {
      msg.textContent = `Stock not available: ${e.message}`;
      return;
    }
    const open = orders.suggestions.filter((s) => s.state === "open");
    const ordered = orders.suggestions.filter((s) => s.state === "approved").slice(0, 20);
    const count = alerts.shrinkage.length + (alerts.anomalies || []).length
      + alerts.expiry_risk.length + alerts.slow_movers.length;
    msg.textContent = `${open.length} to order · ${ordered.length} ordered · ${count} alerts`;
    const list = this.$("stock-orders");
    list.replaceChildren(...open.map((s) => this.orderItem(s)),
      ...ordered.map((s) => this.orderedItem(s)));
    if (!open.length && !ordered.length) {
      list.append(this.el("li", { class: "empty" }, "Nothing to order."));
    }
    this.$("stock-alerts").replaceChildren(...this.alertItems(alerts));
    if (!count) this.$("stock-alerts").append(this.el("li", { class: "empty" }, "No alerts."));
    const first = open[0] || ordered[0];
    if (first) await this.chart(first.sku, first.location);
  }

  orderItem(s) {
    const { el } = this;
    const qty = el("input", { type: "number", min: "1", step: "1", value: String(s.quantity),
      id: `qty-${s.id}`, inputmode: "numeric", "aria-label": `Units of ${s.sku} to order` });
    return el("li", { class: "review-item flagged", "data-suggestion": s.id },
      el("h3", {}, `${s.sku} · ${s.location}`),
      el("p", { class: "hint" }, [s.description, s.supplier && `from ${s.supplier}`]
        .filter(Boolean).join(" · ")),
      el("p", {}, facts(s.facts)),
      el("p", {}, el("label", { for: `qty-${s.id}` }, "Order "), qty,
        s.order_value ? ` units · ${s.order_value} at ${s.unit_price} each` : " units"),
      el("div", { class: "actions" },
        el("button", { type: "button", class: "btn btn-primary", "data-act": "approve",
          onclick: () => this.decide(s, "approve") }, "Approve order"),
        el("button", { type: "button", class: "btn", "data-act": "dismiss",
          onclick: () => this.decide(s, "dismiss") }, "Dismiss"),
        el("button", { type: "button", class: "btn", "data-act": "chart",
          onclick: () => this.chart(s.sku, s.location) }, "Chart")));
  }

  orderedItem(s) {
    const erp = ERP_WORDS[s.erp.state] || s.erp.state;
    return this.el("li", { class: "review-item done", "data-suggestion": s.id },
      this.el("h3", {}, `${s.sku} · ${s.location}: ${s.quantity} ordered`),
      this.el("p", { class: "hint" }, `by ${s.decided_by} · ${erp}`
        + (s.erp.reference ? ` · ${s.erp.reference}` : "")
        + (s.erp.state === "failed" && s.erp.error ? ` · ${s.erp.error}` : "")));
  }

  alertItems(alerts) {
    const { el } = this;
    const item = (cls, text, sku, location) => el("li", { class: cls },
      el("button", { type: "button", class: "link", onclick: () => this.chart(sku, location) },
        text));
    return [
      ...alerts.shrinkage.map((a) => item(`alert ${a.state}`,
        `${a.sku} at ${a.location}: ${a.missing} missing (${a.state}`
        + `${a.value ? `, ${a.value}` : ""}) on ${a.counted_at.slice(0, 10)}`, a.sku, a.location)),
      ...(alerts.anomalies || []).map((a) => item(`alert ${a.state}`,
        `${a.sku} at ${a.location}: counted ${a.counted}, ${a.unexplained} more than receipts `
        + `explain (${a.state}) on ${a.counted_at.slice(0, 10)}`, a.sku, a.location)),
      ...alerts.expiry_risk.map((e) => item("alert expiry",
        `${e.sku} at ${e.location}: ${e.likely_to_expire} likely to expire on ${e.expires}`
        + `${e.value_at_risk ? ` (${e.value_at_risk})` : ""}`, e.sku, e.location)),
      ...alerts.slow_movers.map((m) => item("alert slow",
        `${m.sku} at ${m.location}: ${m.on_hand} not moving for ${m.days_without_consumption} `
        + `days${m.value_tied_up ? ` (${m.value_tied_up} tied up)` : ""}: clear`, m.sku, m.location)),
    ];
  }

  async decide(s, act) {
    const body = {};
    if (act === "approve") {
      const qty = Number(document.getElementById(`qty-${s.id}`).value);
      if (!Number.isInteger(qty) || qty < 1) {
        this.toast("Order a whole number of units");
        return;
      }
      body.quantity = qty;
    }
    try {
      await this.api(`reorder-suggestions/${encodeURIComponent(s.id)}/${act}`,
        { method: "POST", body: JSON.stringify(body) });
      this.toast(act === "approve" ? `${body.quantity} ${s.sku} ordered` : `${s.sku} dismissed`);
    } catch (e) {
      this.toast(`Not done: ${e.message}`);
    }
    await this.render();
  }

  async chart(sku, location) {
    const box = this.$("stock-chart");
    this.$("stock-chart-title").textContent = `${sku} at ${location}`;
    try {
      const data = await this.api(`stock-history?sku=${encodeURIComponent(sku)}`
        + `&location=${encodeURIComponent(location)}`);
      box.replaceChildren(stockChart(data));
    } catch (e) {
      box.replaceChildren(this.el("p", { class: "hint" }, `No chart: ${e.message}`));
    }
  }
}
