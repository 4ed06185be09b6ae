// The one WebSocket to the gateway (`/ws/count`) and the ordered flush of the outbox.
//
// Protocol (fixed by the gateway): hello -> welcome; per photo a JSON header then one binary
// JPEG -> ack (stored durably) then result | error; correct; confirm -> confirmed. Photo ids are
// client UUIDs and the gateway dedupes on them, so re-sending after a dropped connection is safe.
// Outbox items are sent strictly in the order they were made, each one after the previous one was
// acknowledged, so a correction never overtakes the photo it corrects.
import { LABEL_FORMATS, barcodeReader } from "./barcodes.js";
import { Camera } from "./camera.js";
import * as store from "./store.js";

const ACK_TIMEOUT_MS = 60000;
const PREVIEW_TIMEOUT_MS = 5000;
const MAX_BACKOFF_MS = 15000;
const KEEPALIVE_MS = 30000;
// On a slow link (the last uploads' rate says a photo would take longer than SLOW_UPLOAD_S)
// a big photo is sent reduced; the full photo stays here. Where the phone's own reader finds
// codes in the full photo, it is sent at CROPPED_SIDE px with grey crops of those codes at
// full resolution (at most CROP_SIDE px long, after the photo in the same binary message:
// PROTOCOL.md "Slow links"), else at REDUCED_SIDE px: enough to count and to read the labels
// of ordinary bays. make bench-reduced measures both against the full photo.
const SLOW_UPLOAD_S = 3;
const REDUCED_SIDE = 2048;
const CROPPED_SIDE = 1280;
const CROP_SIDE = 320;
const MAX_CROPS = 64;
// Finding codes must not hold the upload up: the reader (a 1 MB WebAssembly module) is loaded
// in the background as soon as the link looks slow, and a search that takes longer than this
// sends the photo at REDUCED_SIDE without crops.
const FIND_CODES_MS = 2500;
const REDUCED_QUALITY = 0.85;
// Error codes that mean "try again later" rather than "this photo is bad".
const RETRYABLE = /unavailable|rate_limited|busy|timeout|overload|internal|not_ready/i;

export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// The phone's code reader, loaded once (in the background once the link looks slow).
let codeReader = null;
function loadCodeReader() {
  codeReader = codeReader || barcodeReader(LABEL_FORMATS).then(async (reader) => {
    const blank = document.createElement("canvas");
    blank.width = blank.height = 8;
    await reader.detect(blank); // a first read loads and compiles the module, off the photo's path
    return reader;
  }).catch(() => {
    codeReader = null; // tried again for the next photo (the module may load then)
    return null;
  });
  return codeReader;
}

// Where the phone's reader sees codes in the full photo: [x1, y1, x2, y2] boxes with a margin,
// inside the photo (none when it cannot read here, or not within FIND_CODES_MS).
async function findCodes(bitmap) {
  let found;
  try {
    const search = loadCodeReader().then((reader) => (reader ? reader.detect(bitmap) : []))
      .catch(() => []); // a search still running when the photo went (its bitmap closed)
    const late = new Promise((resolve) => { setTimeout(() => resolve([]), FIND_CODES_MS); });
    found = await Promise.race([search, late]);
  } catch {
    return [];
  }
  return found.slice(0, MAX_CROPS).map(({ boundingBox: b }) => {
    const m = Math.max(16, 0.125 * Math.max(b.width, b.height));
    return [Math.max(0, Math.floor(b.x - m)), Math.max(0, Math.floor(b.y - m)),
      Math.min(bitmap.width, Math.ceil(b.x + b.width + m)),
      Math.min(bitmap.height, Math.ceil(b.y + b.height + m))];
  }).filter(([x1, y1, x2, y2]) => x2 > x1 && y2 > y1);
}

// A canvas holding `box` of the bitmap at `scale` (grey when asked).
function drawn(bitmap, [x1, y1, x2, y2], scale, grey = false) {
  const c = document.createElement("canvas");
  c.width = Math.max(1, Math.round((x2 - x1) * scale));
  c.height = Math.max(1, Math.round((y2 - y1) * scale));
  const ctx = c.getContext("2d");
  if (grey) ctx.filter = "grayscale(1)";
  ctx.drawImage(bitmap, x1, y1, x2 - x1, y2 - y1, 0, 0, c.width, c.height);
  return c;
}

async function cropOf(bitmap, box) {
  const scale = Math.min(1, CROP_SIDE / Math.max(box[2] - box[0], box[3] - box[1]));
  return { box, jpeg: await Camera.toJpeg(drawn(bitmap, box, scale, true), REDUCED_QUALITY) };
}

export function wsUrl(base = location.href) {
  const u = new URL("ws/count", new URL(".", base));
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.href;
}

export class Link extends EventTarget {
  constructor() {
    super();
    this.ws = null;
    this.state = "offline"; // offline | connecting | online | unpaired
    this.token = null;
    this.session = null;
    this.device = "";
    this.backoff = 1000;
    this.retryTimer = null;
    this.waiters = new Map(); // key "kind:id" -> {resolve, timer}
    this.previews = new Map(); // preview id -> {resolve, timer, sent}
    this.flushing = false;
    this.flushAgain = false;
    this.resentOn = -1; // connection on which unanswered photos were last re-sent
    this.pendingOnGateway = new Set(); // ids the gateway is still counting (from welcome)
    this.retrySoon = false;
    this.pairing = false; // the pairing screen is waiting for this connection's answer
    this.conn = 0; // bumped per connection so stale waits end
    addEventListener("offline", () => this.goOffline());
    addEventListener("online", () => this.connect());
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.kick();
    });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  setState(s, why = "") {
    this.state = s;
    this.emit("state", { state: s, why });
  }

  async start() {
    this.token = await store.getKv("token");
    this.session = await store.getKv("session");
    this.device = await store.getKv("device", "");
    if (!this.token) {
      this.setState("unpaired");
      return;
    }
    this.connect();
  }

  // Try a token: resolves with the session id on welcome, rejects with the gateway's reason.
  pair(token, device) {
    this.token = token;
    this.device = device;
    this.session = null;
    return new Promise((resolve, reject) => {
      const onState = (e) => {
        if (e.detail.state === "online") {
          cleanup();
          resolve(this.session);
        } else if (e.detail.state === "unpaired") {
          cleanup();
          reject(new Error(e.detail.why || "token refused"));
        } else if (e.detail.state === "offline") {
          cleanup();
          reject(new Error(`${e.detail.why}; pairing finishes when the gateway answers`));
        }
      };
      const cleanup = () => this.removeEventListener("state", onState);
      this.addEventListener("state", onState);
      this.connect();
    });
  }

  goOffline() {
    // set_offline / a real network drop does not close an open WebSocket by itself; close it so
    // nothing is sent into a dead pipe and the UI says "offline" at once.
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close();
    this.ws = null;
    this.endWaits();
    this.setState("offline", "no network");
  }

  connect() {
    clearTimeout(this.retryTimer);
    if (!this.token) return;
    if (!navigator.onLine) {
      this.setState("offline", "no network");
      return;
    }
    if (this.ws && this.ws.readyState <= 1) this.ws.close();
    const conn = ++this.conn;
    let welcomed = false;
    let refused = "";
    const ws = new WebSocket(wsUrl());
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.setState("connecting");
    ws.onopen = () => {
      ws.send(JSON.stringify({
        type: "hello", token: this.token, session: this.session || null,
        device: this.device || navigator.userAgent.slice(0, 60),
      }));
    };
    ws.onmessage = async (ev) => {
      if (conn !== this.conn || typeof ev.data !== "string") return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg.type === "welcome") {
        welcomed = true;
        this.pendingOnGateway = new Set(msg.pending || []);
        this.session = msg.session;
        this.currency = msg.currency || this.currency || "";
        if (typeof msg.review_below === "number") {
          this.reviewBelow = msg.review_below; // SHELFCOUNT_REVIEW_BELOW
          await store.setKv("reviewBelow", this.reviewBelow);
        }
        this.role = msg.role || "walker";
        await store.setKv("role", this.role);
        await store.setKv("session", msg.session);
        await store.setKv("currency", this.currency);
        await store.setKv("token", this.token);
        await store.setKv("device", this.device);
        this.backoff = 1000;
        this.setState("online");
        // Keep-alive inside the gateway's idle timeout (SHELFCOUNT_WS_IDLE_TIMEOUT_S, 120 s).
        clearInterval(this.keepAlive);
        this.keepAlive = setInterval(() => {
          if (ws === this.ws && ws.readyState === 1) ws.send(JSON.stringify({ type: "ping" }));
        }, KEEPALIVE_MS);
        this.flush();
        return;
      }
      if (!welcomed && msg.type === "error") {
        if (msg.code === "unknown_session") {
          // The session is gone or not ours any more: start a new one, keep the token.
          this.session = null;
          await store.setKv("session", null);
          refused = "";
          this.retrySoon = true;
          return;
        }
        refused = `${msg.code || "error"}: ${msg.message || "refused"}`;
        return;
      }
      this.onMessage(msg);
    };
    ws.onclose = (ev) => {
      if (ws === this.ws) clearInterval(this.keepAlive);
      if (conn !== this.conn) return;
      this.ws = null;
      this.endWaits();
      if (this.retrySoon) {
        this.retrySoon = false;
        this.connect();
        return;
      }
      if (!welcomed && refused) {
        this.setState("unpaired", refused || ev.reason || "token refused");
        return;
      }
      this.setState("offline", navigator.onLine ? "gateway unreachable" : "no network");
      if (navigator.onLine) {
        this.retryTimer = setTimeout(() => this.connect(), this.backoff);
        this.backoff = Math.min(MAX_BACKOFF_MS, this.backoff * 2);
      }
    };
  }

  endWaits() {
    for (const w of this.waiters.values()) {
      clearTimeout(w.timer);
      w.resolve({ type: "closed" });
    }
    this.waiters.clear();
    for (const p of this.previews.values()) {
      clearTimeout(p.timer);
      p.resolve(null);
    }
    this.previews.clear();
  }

  wait(key, ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(key);
        resolve({ type: "timeout" });
      }, ms);
      this.waiters.set(key, { resolve, timer });
    });
  }

  settle(key, msg) {
    const w = this.waiters.get(key);
    if (!w) return false;
    clearTimeout(w.timer);
    this.waiters.delete(key);
    w.resolve(msg);
    return true;
  }

  async onMessage(msg) {
    const id = msg.id;
    const pv = id && this.previews.get(id);
    if (pv) {
      clearTimeout(pv.timer);
      this.previews.delete(id);
      pv.resolve(msg.type === "result" ? { ...msg, latency: performance.now() - pv.sent } : null);
      return;
    }
    if (msg.type === "ack") {
      await store.updatePhoto(id, (p) => {
        if (p.status === "queued" || p.status === "sending") p.status = "acked";
      });
      this.settle(`photo:${id}`, msg);
      this.emit("changed", { id });
    } else if (msg.type === "result") {
      const p = await store.updatePhoto(id, (r) => {
        r.result = msg;
        if (msg.session) r.session = msg.session;
        if (msg.recount) r.recount = msg.recount;
        r.error = null;
        r.note = null;
        if (msg.confirmed) r.status = "confirmed";
        else if (r.status !== "confirmed" && r.status !== "confirming") r.status = "counted";
      });
      this.settle(`photo:${id}`, msg);
      // A retake: the photos it replaced are kept on the phone but no longer counted.
      for (const old of msg.replaced || []) {
        await store.updatePhoto(old, (r) => {
          r.replacedBy = id;
          if (r.result) r.result = { ...r.result, current: false };
        });
      }
      if (p) this.emit("result", { id, photo: p });
    } else if (msg.type === "boxes_saved") {
      // The gateway took the boxes; the fresh result (rows from the boxes) follows.
      await store.updatePhoto(id, (p) => {
        delete p.boxEdit;
      });
      this.settle(`boxes:${id}`, msg);
    } else if (msg.type === "confirmed") {
      await store.updatePhoto(id, (p) => {
        p.status = "confirmed";
      });
      this.settle(`confirm:${id}`, msg);
      this.emit("changed", { id });
    } else if (msg.type === "recount") {
      // A manager sent this bay back: the walker sees why and retakes it.
      await store.updatePhoto(id, (p) => {
        p.recount = { note: msg.note, by: msg.by };
      });
      this.emit("changed", { id });
      this.emit("recount", msg);
    } else if (msg.type === "located") {
      // The walker's location answer, as the gateway applied it: rows moved, conflict gone.
      await store.updatePhoto(id, (p) => {
        if (p.result) {
          p.result = { ...p.result, rows: msg.rows, bay_rows: msg.bay_rows,
            location_conflict: msg.location_conflict };
        }
      });
      this.settle(`location:${id}`, msg);
      this.emit("changed", { id });
    } else if (msg.type === "corrected") {
      // The gateway's effective rows (corrections applied, confidence 1.0 on corrected lines).
      await store.updatePhoto(id, (p) => {
        if (p.result && Array.isArray(msg.rows)) {
          p.result = { ...p.result, rows: msg.rows, bay_rows: msg.bay_rows || p.result.bay_rows };
        }
      });
      this.settle(`correct:${id}`, msg);
      this.emit("changed", { id });
    } else if (msg.type === "error") {
      if (id && (this.settle(`photo:${id}`, msg) || this.settle(`correct:${id}`, msg) ||
                 this.settle(`location:${id}`, msg) || this.settle(`confirm:${id}`, msg) ||
                 this.settle(`boxes:${id}`, msg))) {
        return;
      }
      if (id) {
        // After the ack: either stored and waiting (Triton outage, `queued`: the result follows)
        // or stored but not countable.
        await store.updatePhoto(id, (p) => {
          if (msg.queued) p.note = msg.message;
          else {
            p.error = `${msg.code}: ${msg.message}`;
            p.status = "failed";
          }
        });
        this.emit("changed", { id });
        if (msg.queued) return;
      }
      this.emit("gateway-error", msg);
    }
  }

  // Bytes per second of the last uploads (photo bytes until the gateway's ack).
  measureUplink(bytes, ms) {
    if (bytes < 50000 || ms <= 0) return; // small uploads say more about latency than rate
    const bps = (bytes * 1000) / ms;
    this.uplinkBps = this.uplinkBps ? (this.uplinkBps + bps) / 2 : bps;
    if (bytes / this.uplinkBps > SLOW_UPLOAD_S) loadCodeReader(); // ready for the next photo
  }

  // The photo as sent, { blob, crops }: reduced when the link is slow and the photo is big
  // (crops: the header's description of the code crops that follow it in `blob`, or null).
  async uploadFor(blob) {
    const whole = { blob, crops: null };
    if (!this.uplinkBps || blob.size / this.uplinkBps <= SLOW_UPLOAD_S) return whole;
    let bitmap = null;
    try {
      bitmap = await createImageBitmap(blob);
      if (Math.max(bitmap.width, bitmap.height) <= CROPPED_SIDE) return whole;
      const codes = await findCodes(bitmap);
      const side = codes.length ? CROPPED_SIDE : REDUCED_SIDE;
      const scale = side / Math.max(bitmap.width, bitmap.height);
      if (scale >= 1) return whole;
      const small = await Camera.toJpeg(drawn(bitmap, [0, 0, bitmap.width, bitmap.height],
        scale), REDUCED_QUALITY);
      const parts = await Promise.all(codes.map((box) => cropOf(bitmap, box)));
      const sent = new Blob([small, ...parts.map((p) => p.jpeg)], { type: "image/jpeg" });
      if (sent.size >= blob.size) return whole;
      const crops = parts.length ? {
        full: [bitmap.width, bitmap.height],
        parts: parts.map((p) => ({ box: p.box, bytes: p.jpeg.size })),
      } : null;
      return { blob: sent, crops };
    } catch {
      return whole; // cannot decode here: send what was taken
    } finally {
      if (bitmap) bitmap.close();
    }
  }

  // Upload progress of a photo: what the socket still buffers, polled until it is all out.
  watchUpload(id, total) {
    const ws = this.ws;
    const tick = () => {
      if (!ws || ws !== this.ws || ws.readyState !== 1) return;
      const left = Math.min(total, ws.bufferedAmount);
      this.emit("progress", { id, sent: total - left, total });
      if (left > 0) setTimeout(tick, 200);
    };
    tick();
  }

  send(obj, blob) {
    if (!this.ws || this.ws.readyState !== 1) return false;
    this.ws.send(JSON.stringify(obj));
    if (blob) this.ws.send(blob);
    return true;
  }

  // Something new to send (or the screen came back on): retry a dead connection now instead of
  // waiting for the back-off timer; flush when connected.
  kick() {
    if (this.state === "online") this.flush();
    else if (this.state === "offline" && this.token && navigator.onLine) {
      this.backoff = 1000;
      this.connect();
    }
  }

  // Send the outbox in order. Each item waits for the gateway's acknowledgement; an item that
  // cannot be acknowledged now stays and the flush stops until the next connection.
  async flush() {
    if (this.flushing) {
      this.flushAgain = true; // an item may have been added after the loop last looked
      return;
    }
    this.flushing = true;
    try {
      await this.resendUncounted();
      let ok = true;
      for (let guard = 0; ok && guard < 10000 && this.state === "online"; guard++) {
        this.flushAgain = false;
        // Confirmations wait out their undo time; everything else goes in order meanwhile.
        const all = await store.outbox();
        const now = Date.now();
        const items = all.filter((i) => !(i.notBefore > now));
        if (!items.length) {
          const held = all.map((i) => i.notBefore).filter((t) => t > now);
          if (held.length) {
            clearTimeout(this.holdTimer);
            this.holdTimer = setTimeout(() => this.flush(), Math.min(...held) - now + 50);
          }
          break;
        }
        ok = await this.sendItem(items[0]);
        this.emit("changed", {});
      }
    } finally {
      this.flushing = false;
    }
    if (this.flushAgain && this.state === "online") {
      this.flushAgain = false;
      this.flush();
    }
  }

  // Photos the gateway acknowledged but whose result never arrived (connection dropped in
  // between): sending the same id again returns the stored count, never a second one.
  async resendUncounted() {
    if (this.resentOn === this.conn) return; // once per connection, right after the welcome
    this.resentOn = this.conn;
    const skip = new Set((await store.outbox()).filter((i) => i.kind === "photo").map((i) => i.id));
    for (const id of this.pendingOnGateway || []) skip.add(id); // their results come by themselves
    for (const p of await store.allPhotos()) {
      if (p.status === "acked" && !p.result && !p.error && p.blob && !skip.has(p.id)) {
        this.send({ type: "photo", id: p.id, location: p.location || undefined, preview: false },
          p.blob);
      }
    }
  }

  async sendItem(item) {
    const conn = this.conn;
    if (item.kind === "photo") {
      const p = await store.getPhoto(item.id);
      if (!p || !p.blob) {
        await store.removeOutbox(item.seq);
        return true;
      }
      const head = { type: "photo", id: p.id, preview: false };
      if (p.location) head.location = p.location;
      if (p.partOf) head.part_of = p.partOf; // "add another part of this bay"
      const { blob, crops } = await this.uploadFor(p.blob);
      if (crops) head.crops = crops;
      const reply = this.wait(`photo:${p.id}`, ACK_TIMEOUT_MS);
      const t0 = performance.now();
      if (!this.send(head, blob)) return false;
      await store.updatePhoto(p.id, (r) => {
        if (r.status === "queued") r.status = "sending";
        r.sentBytes = blob.size;
        r.reduced = blob !== p.blob;
        r.codeCrops = crops ? crops.parts.length : 0;
      });
      this.emit("changed", { id: p.id });
      this.watchUpload(p.id, blob.size);
      const answer = await reply;
      if (answer.type === "ack") this.measureUplink(blob.size, performance.now() - t0);
      return this.afterReply(item, answer, conn);
    }
    if (item.kind === "correct") {
      const msg = { type: "correct", id: item.id, sku: item.sku, quantity: item.quantity };
      if (item.condition) msg.condition = item.condition;
      if (item.newSku) msg.new_sku = item.newSku;
      if (item.expiry !== undefined) msg.expiry = item.expiry;
      if (item.split) msg.split = item.split;
      if (item.cid) msg.correction_id = item.cid; // items queued before ids existed have none
      const reply = this.wait(`correct:${item.id}`, ACK_TIMEOUT_MS);
      if (!this.send(msg)) return false;
      return this.afterReply(item, await reply, conn);
    }
    if (item.kind === "boxes") {
      const msg = { type: "boxes", id: item.id, boxes: item.boxes, correction_id: item.cid };
      const reply = this.wait(`boxes:${item.id}`, ACK_TIMEOUT_MS);
      if (!this.send(msg)) return false;
      return this.afterReply(item, await reply, conn);
    }
    if (item.kind === "location") {
      const msg = { type: "location", id: item.id, location: item.location, new: !!item.isNew };
      const reply = this.wait(`location:${item.id}`, ACK_TIMEOUT_MS);
      if (!this.send(msg)) return false;
      return this.afterReply(item, await reply, conn);
    }
    if (item.kind === "confirm") {
      await store.markSent(item.seq);
      const reply = this.wait(`confirm:${item.id}`, ACK_TIMEOUT_MS);
      if (!this.send({ type: "confirm", id: item.id })) return false;
      return this.afterReply(item, await reply, conn);
    }
    await store.removeOutbox(item.seq);
    return true;
  }

  async afterReply(item, reply, conn) {
    if (reply.type === "closed" || conn !== this.conn) return false;
    if (reply.type === "timeout") {
      // No answer: drop this connection; the item is re-sent (same id) on the next one.
      if (this.ws) this.ws.close();
      return false;
    }
    if (reply.type === "error") {
      const why = `${reply.code}: ${reply.message}`;
      if (RETRYABLE.test(reply.code || "")) {
        await store.updatePhoto(item.id, (p) => {
          p.note = `waiting: ${why}`;
        });
        this.retryLater(reply.retry_after_s);
        return false;
      }
      await store.updatePhoto(item.id, (p) => {
        if (item.kind === "photo") p.status = "failed";
        if (item.kind === "confirm" && p.status === "confirming") p.status = "counted";
        if (item.kind === "correct") {
          // Refused: the phone shows the gateway's figure again, and says why.
          if (p.edits) delete p.edits[item.sku];
          p.refused = { ...(p.refused || {}), [item.sku]: why };
        } else if (item.kind === "boxes") {
          delete p.boxEdit; // the gateway's boxes again, and why
          p.boxRefused = why;
        } else {
          p.error = `${item.kind} ${why}`;
        }
      });
      this.emit("gateway-error", { ...reply, kind: item.kind });
    }
    const replaceable = (item.kind === "correct" || item.kind === "boxes") && item.cid;
    await store.removeOutbox(item.seq, replaceable ? item.cid : undefined);
    return true;
  }

  retryLater(afterS) {
    clearTimeout(this.retryTimer);
    const ms = afterS ? Math.max(200, afterS * 1000) : this.backoff;
    this.retryTimer = setTimeout(() => this.flush(), ms);
    this.backoff = Math.min(MAX_BACKOFF_MS, this.backoff * 2);
  }

  // A live preview frame: not queued, not stored; resolves with the result or null.
  // The gateway keeps only the newest waiting preview per connection, so callers send one at a
  // time (a second one would replace the first).
  preview(blob, location, timeoutMs = PREVIEW_TIMEOUT_MS) {
    if (this.state !== "online") return Promise.resolve(null);
    const id = uuid();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.previews.delete(id);
        resolve(null);
      }, timeoutMs);
      this.previews.set(id, { resolve, timer, sent: performance.now() });
      const head = { type: "photo", id, preview: true };
      if (location) head.location = location;
      if (!this.send(head, blob)) {
        clearTimeout(timer);
        this.previews.delete(id);
        resolve(null);
      }
    });
  }

  async newSession() {
    this.session = null;
    await store.setKv("session", null);
    this.connect();
  }
}
