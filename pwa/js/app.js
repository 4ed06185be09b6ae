// ShelfCount walker app: pair, set the location, count with the camera, review, confirm.
import { barcodeReader, LABEL_FORMATS } from "./barcodes.js";
import {
  CORNER_GRAB_PX, boxCounts, cornerAt, editableBoxes, moveCorner, pointToPicture, tapBoxes,
  tapToPicture,
} from "./boxedit.js";
import { Camera } from "./camera.js";
import { FINDING_STYLE, drawBoxes, drawFindings, fitTransform, skuColour } from "./draw.js";
import { Link, uuid } from "./link.js";
import * as store from "./store.js";
import { StockScreen } from "./stock.js";

const PREVIEW_INTERVAL_MS = 300; // ~3 preview frames a second
const SCAN_TIMEOUT_MS = 20000; // a bin-label frame on a busy gateway
const LOCATION_RE = /\b[A-Z]{1,2}-\d{1,3}-\d{1,2}\b/;
const LOW_CONFIDENCE = 0.6;
const MEDIUM_CONFIDENCE = 0.85;
const EXPIRY_WARN_DAYS = 30;

const $ = (id) => document.getElementById(id);
const link = new Link();
const cam = new Camera($("video"));

// Figures the tests and the benchmark read (window.__sc.stats).
const stats = {
  previews: 0, previewTimes: [], previewLatencies: [], lastPreviewBoxes: 0,
  shutters: [], captures: [], photoVia: null, photoBytes: 0,
  barcodeEngine: null, labelVia: null, // "native" / "zxing-wasm"; "phone" / "gateway"
};

const ui = {
  screen: null,
  location: null,
  photoId: null, // photo shown on the result screen
  shutterAt: null, // performance.now() of the last shutter tap, for the tap -> result figure
  edit: null, // {id, sku, qty, damaged, typed}
  partOf: null, // the next photo is another part of this photo's bay ("Add part of this bay")
  previewTimer: null,
  previewRun: 0,
  previewInflight: 0,
  previewEncoding: false,
  previewSeq: 0,
  previewDrawn: 0,
  detected: null,
};

// ---------- feedback ----------
let audio = null;
function beep(freq = 880, ms = 120) {
  try {
    audio = audio || new AudioContext();
    const o = audio.createOscillator();
    const g = audio.createGain();
    o.frequency.value = freq;
    g.gain.value = 0.15;
    o.connect(g).connect(audio.destination);
    o.start();
    o.stop(audio.currentTime + ms / 1000);
  } catch {
    // no audio: the vibration and the screen still say it
  }
}
function buzz(pattern) {
  if (navigator.vibrate) navigator.vibrate(pattern);
}
let toastTimer = null;
function toast(text) {
  const t = $("toast");
  t.replaceChildren(Object.assign(document.createElement("span"), { textContent: text }));
  t.classList.add("on");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.classList.remove("on"), 2500);
}

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}

// ---------- screens ----------
async function show(name) {
  ui.screen = name;
  if (name !== "result") ui.boxEdit = null; // unsaved box fixes are dropped on leaving
  for (const s of document.querySelectorAll(".screen")) s.hidden = s.id !== `screen-${name}`;
  document.querySelector(".topbar").hidden = name === "pair";
  if (name === "count") {
    clearLive();
    await startCamera();
    startPreviews();
  } else {
    stopPreviews();
  }
  if (name === "session") {
    cam.stop();
    await renderSession();
  }
  if (name === "review") {
    cam.stop();
    await renderReview();
  }
  if (name === "stock") {
    cam.stop();
    await stockScreen.render();
  }
  if (name !== "pair") stopQrScan();
}

async function startCamera() {
  const msg = $("cam-msg");
  try {
    await cam.start();
    msg.hidden = true;
    $("torch").hidden = !cam.hasTorch();
  } catch (e) {
    msg.textContent = `Camera not available: ${e.message || e.name}`;
    msg.hidden = false;
  }
}

// ---------- pairing ----------
// The QR may hold the bare token, a link to this app with #token=... / ?token=..., or JSON.
function tokenFrom(text) {
  const t = (text || "").trim();
  if (!t) return null;
  try {
    const j = JSON.parse(t);
    if (j && typeof j.token === "string") return j.token;
  } catch {
    // not JSON
  }
  if (/^https?:\/\//i.test(t)) {
    const u = new URL(t);
    const p = new URLSearchParams(u.hash.replace(/^#/, ""));
    return p.get("token") || u.searchParams.get("token") || null;
  }
  return t;
}

async function pairWith(token, device) {
  $("pair-error").textContent = "";
  link.pairing = true;
  try {
    await link.pair(token, device);
    toast("Paired");
    buzz(60);
    await show("count");
    if (!ui.location) openLocations();
  } catch (e) {
    $("pair-error").textContent = `Not paired: ${e.message}`;
  } finally {
    link.pairing = false;
  }
}

let qrStop = null;
// Read the manager's QR with the camera (js/barcodes.js: the browser's BarcodeDetector, or the
// vendored ZXing-C++ ponyfill with the same API).
async function startQrScan() {
  const detector = await barcodeReader(["qr_code"]);
  stats.barcodeEngine = detector.engine;
  const video = $("pair-video");
  const msg = $("pair-cam-msg");
  $("pair-cam").hidden = false;
  msg.textContent = "Point the camera at the QR code.";
  const c = new Camera(video);
  try {
    await c.start();
  } catch (e) {
    msg.textContent = `Camera not available: ${e.message || e.name}`;
    return;
  }
  let running = true;
  qrStop = () => {
    running = false;
    c.stop();
    $("pair-cam").hidden = true;
  };
  for (let i = 0; running && i < 2400; i++) {
    let text = null;
    try {
      const found = await detector.detect(video);
      text = found.length ? found[0].rawValue : null;
    } catch {
      // frame not ready yet
    }
    const token = tokenFrom(text);
    if (token) {
      stopQrScan();
      $("pair-token").value = token;
      buzz(40);
      await pairWith(token, $("pair-device").value.trim());
      return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
function stopQrScan() {
  if (qrStop) qrStop();
  qrStop = null;
}

// ---------- location ----------
async function setLocation(loc) {
  ui.location = loc || null;
  await store.setKv("location", ui.location);
  if (ui.location) {
    const recent = (await store.getKv("recentLocations", [])).filter((x) => x !== ui.location);
    recent.unshift(ui.location);
    await store.setKv("recentLocations", recent.slice(0, 30));
  }
  renderLocation();
}

function renderLocation() {
  $("loc-value").textContent = ui.location || "tap to set";
  $("loc-btn").classList.toggle("unset", !ui.location);
  $("detected").hidden = true;
}

// Locations to pick from: the ones used lately, the ones the gateway read in this session, then
// the catalog's (GET api/v1/locations, kept for offline use) with the SKU that lives there.
async function knownLocations() {
  const recent = await store.getKv("recentLocations", []);
  const seen = (await store.allPhotos()).map((p) => p.location || locationFromResult(p.result));
  const mine = [...new Set([...recent, ...seen.filter(Boolean)])].slice(0, 40);
  const catalog = await store.getKv("catalogLocations", []);
  const home = new Map(catalog.map((c) => [c.location, c]));
  const rest = catalog.map((c) => c.location).filter((loc) => !mine.includes(loc));
  return [...mine, ...rest].slice(0, 300).map((loc) => ({ loc, home: home.get(loc) }));
}

// A list the gateway serves (GET api/v1/<path> answers {<path>: [...]}), kept in IndexedDB
// under `kvKey` for offline use; false when it could not be fetched (the last one stays).
async function fetchKept(path, kvKey) {
  if (!link.token) return false;
  try {
    const r = await fetch(`api/v1/${path}`, { headers: authHeaders() });
    if (!r.ok) return false;
    const list = (await r.json())[path];
    if (!Array.isArray(list)) return false;
    await store.setKv(kvKey, list);
    return true;
  } catch {
    return false; // offline: the list fetched last time stays
  }
}

function fetchCatalogLocations() {
  return fetchKept("locations", "catalogLocations");
}

// The bins to count today (GET api/v1/tasks: recounts first, then cycle counts).
function fetchTasks() {
  return fetchKept("tasks", "tasks");
}

async function renderTaskList() {
  const byLoc = new Map();
  for (const t of await store.getKv("tasks", [])) {
    const had = byLoc.get(t.location);
    if (!had || (t.recount && !had.recount)) byLoc.set(t.location, t);
  }
  const tasks = [...byLoc.values()].sort((a, b) => (b.recount - a.recount)
    || a.location.localeCompare(b.location)).slice(0, 50);
  $("task-title").hidden = !tasks.length;
  $("task-list").replaceChildren(...tasks.map((t) => el("li", {}, el("button", {
    type: "button", class: t.recount ? "btn btn-task recount" : "btn btn-task",
    "data-task": t.location, "aria-label": `${t.location}: ${t.reason}`,
    onclick: async () => {
      await pickLocation(t.location);
      $("locations").close();
    },
  }, t.recount ? `${t.location} · recount` : t.location))));
}

async function pickLocation(loc) {
  const pick = locationPick;
  locationPick = null;
  if (pick) await pick(loc);
  else await setLocation(loc);
}

async function renderLocationList() {
  const list = $("loc-list");
  list.replaceChildren();
  for (const { loc, home } of await knownLocations()) {
    const what = home ? `${home.sku} ${home.description}`.trim() : "";
    list.append(el("li", {}, el("button", {
      type: "button", class: "btn", "data-loc": loc, title: what || null,
      "aria-label": what ? `${loc}: ${what}` : null,
      onclick: async () => {
        await pickLocation(loc);
        $("locations").close();
      },
    }, loc)));
  }
}

// `onPick`: where a picked location goes instead of becoming the walker's location (e.g. the
// answer to a location conflict).
let locationPick = null;
async function openLocations(onPick = null) {
  locationPick = typeof onPick === "function" ? onPick : null;
  $("scan-msg").textContent = "";
  $("loc-input").value = ui.location || "";
  await renderLocationList();
  await renderTaskList();
  if (!$("locations").open) $("locations").showModal();
  const [catalog, tasks] = await Promise.all([fetchCatalogLocations(), fetchTasks()]);
  if (catalog && $("locations").open) await renderLocationList();
  if (tasks && $("locations").open) await renderTaskList();
}

// The bin label's location as the gateway read it: a row's Location or a code's text.
function locationFromResult(r) {
  if (!r) return null;
  for (const row of r.rows || []) {
    if (row.Location) return String(row.Location);
  }
  for (const c of r.codes || []) {
    const m = String(c.Text || c.text || "").match(LOCATION_RE);
    if (m) return m[0];
  }
  return null;
}

let labelReader = null;
// A location from the label's barcode, read on the phone (no network needed), or null.
async function labelOnPhone(canvas) {
  try {
    labelReader = labelReader || (await barcodeReader(LABEL_FORMATS));
    stats.barcodeEngine = labelReader.engine;
    for (const code of await labelReader.detect(canvas)) {
      const m = String(code.rawValue || "").match(LOCATION_RE);
      if (m) return m[0];
    }
  } catch {
    // no reader on this phone: the gateway reads the label
  }
  return null;
}

// The label as the gateway reads it off the frame (barcodes and OCR of printed text).
async function labelOnGateway(canvas) {
  if (link.state !== "online") throw new Error("no barcode read, and offline: type or pick it");
  const blob = await Camera.toJpeg(canvas, 0.85);
  const r = await link.preview(blob, null, SCAN_TIMEOUT_MS);
  if (!r) throw new Error("no answer from the gateway");
  return locationFromResult(r);
}

async function scanLabel() {
  const msg = $("scan-msg");
  msg.textContent = "Reading the label...";
  // The live loop pauses: its next frame would replace this one on the gateway.
  const live = ui.screen === "count";
  stopPreviews();
  try {
    if (!(await cam.ready())) throw new Error("the camera shows no picture");
    const c = cam.frameToCanvas(1920);
    if (!c) throw new Error("no camera picture yet");
    let loc = await labelOnPhone(c);
    stats.labelVia = loc ? "phone" : "gateway";
    if (!loc) loc = await labelOnGateway(c);
    if (!loc) {
      msg.textContent = "No location label found: aim at the bin label and try again.";
      return;
    }
    await setLocation(loc);
    buzz(40);
    beep(1200, 80);
    toast(`Location ${loc}`);
    $("locations").close();
  } catch (e) {
    msg.textContent = `Could not read the label: ${e.message}`;
  } finally {
    if (live && ui.screen === "count") startPreviews();
  }
}

// ---------- live preview ----------
// A frame every PREVIEW_INTERVAL_MS (~3/s) with at most two on their way: while the gateway
// counts one, the next is already waiting there, so the round trip does not cut the rate. Never
// three: the gateway keeps only the newest waiting frame, a third would replace the second.
const PREVIEW_MAX_INFLIGHT = 2;

function startPreviews() {
  stopPreviews();
  const run = ui.previewRun;
  ui.previewTimer = setInterval(() => previewTick(run), PREVIEW_INTERVAL_MS);
  previewTick(run);
}
function stopPreviews() {
  ui.previewRun += 1;
  clearInterval(ui.previewTimer);
  ui.previewTimer = null;
}

async function previewTick(run) {
  if (ui.previewInflight >= PREVIEW_MAX_INFLIGHT || ui.previewEncoding) return;
  if (ui.screen !== "count" || link.state !== "online" || !cam.running || document.hidden) return;
  ui.previewEncoding = true;
  let blob = null;
  try {
    blob = await cam.previewFrame();
  } finally {
    ui.previewEncoding = false;
  }
  if (!blob || run !== ui.previewRun) return;
  const seq = ++ui.previewSeq;
  ui.previewInflight += 1;
  let r = null;
  try {
    r = await link.preview(blob, ui.location);
  } finally {
    ui.previewInflight -= 1;
  }
  if (!r || ui.screen !== "count" || seq < ui.previewDrawn) return;
  ui.previewDrawn = seq;
  drawLive(r);
  stats.previews += 1;
  stats.lastPreviewBoxes = (r.boxes || []).length;
  stats.previewLatencies.push(r.latency);
  stats.previewTimes.push(performance.now());
  if (stats.previewTimes.length > 100) {
    stats.previewTimes.shift();
    stats.previewLatencies.shift();
  }
}

function clearLive() {
  drawBoxes($("overlay"), [], 0, 0, 0, 0, "contain");
  $("live").replaceChildren();
  $("detected").hidden = true;
}

// Live chips name a SKU only for items whose own code or label names it; the others are
// "item" until the photo is counted (the bin's home SKU is a guess, not a reading).
function liveChips(r) {
  const sources = r.box_sources || [];
  const named = new Map();
  let unnamed = 0;
  (r.boxes || []).forEach((b, i) => {
    if (sources[i] === "own" && b[5]) named.set(b[5], (named.get(b[5]) || 0) + 1);
    else unnamed += 1;
  });
  return { named, unnamed };
}

function drawLive(r) {
  const v = $("video");
  const sources = r.box_sources || [];
  const boxes = (r.boxes || []).map((b, i) => (sources[i] === "own" ? b : [...b.slice(0, 5), ""]));
  drawBoxes($("overlay"), boxes, r.width, r.height, v.videoWidth, v.videoHeight, "contain");
  const live = $("live");
  const { named, unnamed } = liveChips(r);
  const kids = [el("span", { class: "chip chip-total" }, `${(r.boxes || []).length} items`)];
  for (const [sku, n] of [...named].sort()) {
    const chip = el("span", { class: "chip" }, `${sku}: ${n}`);
    chip.style.borderColor = skuColour(sku);
    kids.push(chip);
  }
  if (unnamed && named.size) kids.push(el("span", { class: "chip" }, `item: ${unnamed}`));
  live.replaceChildren(...kids);
  const loc = locationFromResult(r);
  const d = $("detected");
  if (loc && loc !== ui.location) {
    ui.detected = loc;
    d.textContent = ui.location ? `Label ${loc}: switch?` : `Label ${loc}: use it`;
    d.hidden = false;
  } else {
    d.hidden = true;
  }
}

// ---------- shutter ----------
async function shutter() {
  const btn = $("shutter");
  if (btn.disabled) return;
  btn.disabled = true;
  ui.shutterAt = performance.now();
  // Live frames stop at once: the phone's CPU goes to the photo, the gateway's to counting it.
  stopPreviews();
  try {
    $("flash").classList.remove("on");
    void $("flash").offsetWidth;
    $("flash").classList.add("on");
    buzz(30);
    const { blob, via } = await cam.takePhoto();
    stats.photoVia = via;
    stats.photoBytes = blob.size;
    stats.captures.push(performance.now() - ui.shutterAt);
    const photo = {
      id: uuid(), created: Date.now(), location: ui.location, blob, status: "queued",
      result: null, error: null, edits: {}, partOf: ui.partOf, session: link.session,
    };
    ui.partOf = null;
    // Persist first: once this resolves the photo survives a reload or a crash of the tab.
    await store.addPhoto(photo);
    ui.photoId = photo.id;
    await show("result");
    await renderResult(photo);
    link.kick();
    updatePending();
  } catch (e) {
    toast(`Photo failed: ${e.message}`);
    if (ui.screen === "count") startPreviews();
  } finally {
    btn.disabled = false;
  }
}

// ---------- result and review ----------
function confidenceOf(row) {
  const raw = row.Count_Confidence;
  if (raw === null || raw === undefined || raw === "") return { level: "medium", value: null };
  const s = String(raw).trim().toLowerCase();
  let v = parseFloat(s);
  if (!Number.isNaN(v)) {
    if (s.endsWith("%") || v > 1) v /= 100;
    const level = v < LOW_CONFIDENCE ? "low" : v < MEDIUM_CONFIDENCE ? "medium" : "high";
    return { level, value: v };
  }
  const level = s.startsWith("l") ? "low" : s.startsWith("h") ? "high" : "medium";
  return { level, value: null };
}

function expiryClass(text) {
  if (!text) return "";
  const d = new Date(`${String(text).slice(0, 10)}T00:00:00`);
  if (Number.isNaN(d.getTime())) return "";
  const days = (d - new Date()) / 86400000;
  if (days < 0) return "expired";
  return days < EXPIRY_WARN_DAYS ? "expiring" : "";
}

// Items split off a line by Condition (e.g. 2 of 12 Damaged) are a line of their own.
// The boxes being fixed on this photo (unsaved), else a saved set the gateway has not taken yet.
function pendingBoxes(photo) {
  if (ui.boxEdit && ui.boxEdit.id === photo.id) return ui.boxEdit.boxes;
  return photo.boxEdit || null;
}

function lineQuantity(photo, row) {
  const boxes = pendingBoxes(photo);
  if (boxes && !row._split) return boxCounts(boxes).get(row.SKU || "") || 0;
  const e = !row._split && photo.edits && photo.edits[row.SKU];
  if (!e) return Number(row.Quantity_Counted) || 0;
  return e.quantity - ((e.split && e.split.quantity) || 0);
}

const PHOTO_STATE = {
  queued: "waiting to send", sending: "sending", acked: "counting", counted: "to confirm",
  confirming: "confirming", confirmed: "confirmed", failed: "failed",
};

const STATUS_TEXT = {
  queued: "Saved on this phone. It is counted as soon as the gateway is reachable.",
  sending: "Sending...",
  acked: "Stored on the gateway, counting...",
  counted: "",
  confirming: "Confirmation queued.",
  confirmed: "Bay confirmed.",
  failed: "Failed",
};

// One word (and colour, styles.css [data-state]) for where a photo is: queued, sending,
// counting, done, failed.
function uploadState(photo) {
  if (photo.status === "failed" || photo.error) return "failed";
  if (photo.result) return "done";
  if (photo.status === "sending") return "sending";
  if (photo.status === "acked") return "counting";
  return "queued";
}

function showProgress({ id, sent, total }) {
  if (ui.screen !== "result" || id !== ui.photoId || !total) return;
  const st = $("result-status");
  if (st.dataset.state !== "sending") return;
  const mb = (n) => (n / 1e6).toFixed(1);
  st.textContent = sent < total
    ? `Sending ${Math.round((100 * sent) / total)} % (${mb(sent)} of ${mb(total)} MB)...`
    : "Sent: the gateway is storing it...";
}

async function renderResult(photo) {
  if (!photo) return;
  const img = $("photo");
  if (photo.blob) {
    if (img.dataset.id !== photo.id) {
      if (img.src) URL.revokeObjectURL(img.src);
      img.src = URL.createObjectURL(photo.blob);
      img.dataset.id = photo.id;
      await img.decode().catch(() => {});
    }
  } else {
    img.removeAttribute("src");
    img.dataset.id = "";
  }
  const r = photo.result;
  if (r) ui.resultSize = { w: r.width, h: r.height };
  // What is recorded: the rows' location (the bin label read, or the walker's answer).
  const where = locationFromResult(r) || photo.location || "no location";
  let status = STATUS_TEXT[photo.status] ?? "";
  if (photo.error) status = `${status} ${photo.error}`.trim();
  if (photo.note && !r) {
    status = photo.status === "acked" ? `Stored on the gateway: ${photo.note}`
      : `${status} (${photo.note})`;
  }
  if (r && photo.status !== "confirmed") {
    const t = r.timings_ms && r.timings_ms.total;
    status = `${where}: ${(r.boxes || []).length} items${t ? ` in ${Math.round(t)} ms` : ""}`;
    if (photo.status === "confirming") status += " · confirmation queued";
  } else if (photo.status === "confirmed") {
    status = `${where}: bay confirmed.`;
  }
  if (photo.recount && photo.status !== "confirmed") {
    status = `Recount asked${photo.recount.by ? ` by ${photo.recount.by}` : ""}: `
      + `${photo.recount.note}. ${status}`;
  }
  if (photo.reduced) {
    status += ` · sent at reduced size (slow link${photo.codeCrops
      ? `, with ${photo.codeCrops} code crops at full resolution` : ""})`;
  }
  renderCheckNote(photo);
  if (photo.boxRefused) status += ` · boxes refused: ${photo.boxRefused}`;
  if (photo.status === "queued" && link.state === "online" && !photo.note) {
    status = "Queued: it is sent next.";
  }
  const st = $("result-status");
  st.textContent = status;
  st.dataset.state = uploadState(photo);
  const lines = $("lines");
  lines.replaceChildren();
  for (const row of r ? r.rows || [] : []) {
    const conf = confidenceOf(row);
    const qty = lineQuantity(photo, row);
    const edit = photo.edits && photo.edits[row.SKU];
    const damaged = edit ? edit.condition === "Damaged" : row.Condition === "Damaged";
    const exp = row.Expiration_Date || "";
    const refused = photo.refused && photo.refused[row.SKU];
    const meta = [
      conf.value !== null ? `confidence ${Math.round(conf.value * 100)}%`
        : `confidence ${conf.level}`,
      edit && edit.expiry !== undefined ? `exp ${edit.expiry || "none"}`
        : exp ? `exp ${exp}` : null,
      row.Condition && row.Condition !== "Good" ? row.Condition : null,
      edit && edit.newSku ? `becomes ${edit.newSku}` : null,
      refused ? `correction refused: ${refused}` : null,
    ].filter(Boolean);
    const b = el("button", {
      type: "button",
      class: ["line", conf.level === "low" && "low", edit && "edited", damaged && "damaged"]
        .filter(Boolean).join(" "),
      "data-sku": row.SKU,
      "data-split": row._split || null,
      onclick: () => {
        if (photo.status === "confirmed" || photo.status === "confirming") {
          toast("This bay is confirmed: corrections are closed");
        } else {
          openEdit(photo, row._split ? mainLine(photo, row.SKU) || row : row);
        }
      },
    },
    el("span", { class: `conf conf-${conf.level}` }),
    el("span", { class: "what" },
      el("div", { class: "sku" }, row.SKU || "unknown item"),
      el("div", { class: "desc" }, row.Product_Description || ""),
      el("div", { class: `meta ${expiryClass(exp)}` }, meta.join(" · "))),
    el("span", { class: "q" }, String(qty)),
    el("span", { class: "sr-only" }, " items. Tap to correct."));
    lines.append(el("li", {}, b));
  }
  renderFindings(r);
  const conflict = renderConflict(photo);
  const counted = renderBayNote(photo);
  $("confirm").disabled = !r || !counted || !!conflict || photo.status === "confirmed"
    || photo.status === "confirming";
  // Another part may follow a photo that is not counted yet (offline): the gateway links it.
  $("add-part").disabled = !counted || ["confirmed", "confirming", "failed"].includes(photo.status);
  $("add-sku").disabled = !r || $("add-part").disabled;
  if (ui.confirmArmed !== photo.id) {
    $("confirm").textContent = "Confirm bay";
    $("confirm-why").hidden = true;
  }
  if (photo.status !== "confirming") $("undo-confirm").hidden = true;
  const fixing = pendingBoxes(photo);
  $("fix-boxes").disabled = !r || !counted || ["confirmed", "confirming"].includes(photo.status);
  renderBoxTools(photo);
  requestAnimationFrame(() => {
    if (r) {
      const shown = fixing ? fixing.map((b) => [b[0], b[1], b[2], b[3], 1, b[4]]) : r.boxes;
      drawBoxes($("photo-overlay"), shown, r.width, r.height, img.naturalWidth,
        img.naturalHeight, "contain",
        { numbers: false, handles: !!ui.boxEdit && ui.boxEdit.id === photo.id });
      if (!fixing) {
        drawFindings($("photo-overlay"), r.findings || [], r.width, r.height,
          img.naturalWidth, img.naturalHeight, "contain");
      }
    } else {
      drawBoxes($("photo-overlay"), [], 0, 0, 0, 0, "contain");
    }
  });
}

// The shelf audit under the lines: a legend of the kinds found (their colours on the photo)
// and one line per finding, so the walker can act on it before confirming the bay.
function findingText(f) {
  switch (f.type) {
    case "gap": return `Empty facing${f.expected_sku ? ` (plan: ${f.expected_sku})` : ""}`;
    case "misplaced": return `${f.sku} stands where ${f.expected_sku} should`;
    case "missing": return `${f.expected_sku} is planned here but not on the shelf`;
    case "extra": return `${f.sku} is not planned in this bay`;
    default: return f.type;
  }
}

function renderFindings(r) {
  const findings = ((r && r.findings) || []).filter((f) => FINDING_STYLE[f.type]);
  const box = $("findings");
  box.hidden = !findings.length;
  const kinds = Object.keys(FINDING_STYLE).filter((k) => findings.some((f) => f.type === k));
  $("finding-legend").replaceChildren(...kinds.map((k) => el("li", { "data-type": k },
    el("span", { class: `swatch swatch-${k}` }),
    `${FINDING_STYLE[k].label}: ${findings.filter((f) => f.type === k).length}`)));
  $("finding-list").replaceChildren(...findings.map((f) => el("li", { "data-type": f.type },
    el("span", { class: `swatch swatch-${f.type}` }),
    findingText(f))));
}

// "Please check": a photo nobody corrected whose least sure line is below the gateway's
// SHELFCOUNT_REVIEW_BELOW (the gateway's own please_check where it says so).
function pleaseCheck(photo) {
  const r = photo.result;
  if (!r || photo.boxEdit || ["confirmed", "confirming"].includes(photo.status)) return [];
  if (r.please_check === false || Object.keys(photo.edits || {}).length) return [];
  const below = typeof link.reviewBelow === "number" ? link.reviewBelow : 0.6;
  return (r.rows || []).filter((row) => {
    const v = confidenceOf(row).value;
    return v !== null && v < below;
  }).map((row) => row.SKU || "unidentified");
}

function renderCheckNote(photo) {
  const skus = pleaseCheck(photo);
  const note = $("check-note");
  note.hidden = !skus.length;
  note.textContent = skus.length
    ? `Please check the boxes: not sure of ${skus.join(", ")}. Tap "Fix boxes" or a line.` : "";
}

// ---------- fixing boxes (js/boxedit.js) ----------
function renderBoxTools(photo) {
  const editing = ui.boxEdit && ui.boxEdit.id === photo.id;
  $("box-tools").hidden = !editing;
  $("photo-wrap").classList.toggle("fixing", !!editing); // drags resize boxes, not scroll
  $("fix-boxes").hidden = !!editing;
  if (!editing) return;
  const counts = [...boxCounts(ui.boxEdit.boxes)].sort()
    .map(([sku, n]) => `${sku || "unnamed"} ${n}`);
  $("box-summary").textContent = `${ui.boxEdit.boxes.length} items`
    + (counts.length ? `: ${counts.join(" · ")}` : "") + ". Tap a box to take it out, "
    + "an item without one to add it; drag a corner to fit it; hold a box to name its product.";
  $("boxes-undo").disabled = !ui.boxEdit.history.length;
}

async function startBoxFix() {
  const photo = await store.getPhoto(ui.photoId);
  if (!photo || !photo.result) return;
  ui.boxEdit = { id: photo.id, boxes: photo.boxEdit || editableBoxes(photo.result), history: [],
    w: photo.result.width, h: photo.result.height };
  await renderResult(photo);
}

async function tapPhoto(event) {
  if (!ui.boxEdit || ui.boxEdit.id !== ui.photoId) return;
  if (ui.longPressed || ui.dragged) { // the press that named or resized a box is no tap
    ui.longPressed = false;
    ui.dragged = false;
    return;
  }
  const photo = await store.getPhoto(ui.photoId);
  const r = photo && photo.result;
  if (!r) return;
  const img = $("photo");
  const at = tapToPicture($("photo-overlay"), event, r.width, r.height, img.naturalWidth,
    img.naturalHeight, "contain");
  if (!at) return;
  const [boxes, what] = tapBoxes(ui.boxEdit.boxes, at.x, at.y, r.width, r.height);
  ui.boxEdit.history.push(ui.boxEdit.boxes);
  ui.boxEdit.boxes = boxes;
  buzz(what === "added" ? 20 : 40);
  await renderResult(photo);
}

// A long press on a box (held 600 ms, then let go) asks which product it is. Decided on
// release from the events' own times, so a busy phone never takes a tap for a long press.
const LONG_PRESS_MS = 600;

// The picture point under a pointer while fixing boxes (unclamped: a drag may leave the photo).
function pointerOnPicture(event) {
  const img = $("photo");
  return pointToPicture($("photo-overlay"), event, ui.boxEdit.w, ui.boxEdit.h,
    img.naturalWidth, img.naturalHeight, "contain");
}

function pressPhoto(event) {
  clearTimeout(ui.pressTimer);
  ui.longPressed = false;
  ui.dragged = false;
  ui.press = null;
  ui.drag = null;
  if (!ui.boxEdit || ui.boxEdit.id !== ui.photoId) return;
  const at = pointerOnPicture(event);
  const grab = cornerAt(ui.boxEdit.boxes, at.x, at.y, CORNER_GRAB_PX / at.scale);
  if (grab) { // a corner: this press resizes that box (no tap, no long press)
    ui.drag = { ...grab, before: ui.boxEdit.boxes, moved: false };
    $("photo-wrap").setPointerCapture(event.pointerId);
    return;
  }
  ui.press = { x: event.clientX, y: event.clientY, t: event.timeStamp };
  ui.pressTimer = setTimeout(() => buzz(30), LONG_PRESS_MS); // "you can let go now"
}

function dragPhoto(event) {
  const drag = ui.drag;
  if (!drag || !ui.boxEdit) return;
  const at = pointerOnPicture(event);
  const boxes = [...ui.boxEdit.boxes];
  boxes[drag.index] = moveCorner(boxes[drag.index], drag.corner, at.x, at.y, ui.boxEdit.w,
    ui.boxEdit.h);
  ui.boxEdit.boxes = boxes;
  drag.moved = true;
  const img = $("photo");
  drawBoxes($("photo-overlay"), boxes.map((b) => [b[0], b[1], b[2], b[3], 1, b[4]]),
    ui.boxEdit.w, ui.boxEdit.h, img.naturalWidth, img.naturalHeight, "contain",
    { numbers: false, handles: true });
}

async function endDrag() {
  const drag = ui.drag;
  ui.drag = null;
  if (!drag.moved) return; // a press on a corner that did not move is an ordinary tap
  ui.dragged = true; // the click that follows is no tap
  ui.boxEdit.history.push(drag.before);
  buzz(20);
  const photo = await store.getPhoto(ui.photoId);
  if (photo) await renderResult(photo);
}

function releasePhoto(event) {
  clearTimeout(ui.pressTimer);
  if (ui.drag) {
    endDrag();
    return;
  }
  const start = ui.press;
  ui.press = null;
  if (!start || event.type !== "pointerup") return;
  const still = Math.hypot(event.clientX - start.x, event.clientY - start.y) < 12;
  if (still && event.timeStamp - start.t >= LONG_PRESS_MS) {
    ui.longPressed = true; // the click that follows is no tap
    longPress(start);
  }
}

async function longPress(start) {
  const photo = await store.getPhoto(ui.photoId);
  const r = photo && photo.result;
  if (!r || !ui.boxEdit) return;
  const img = $("photo");
  const at = tapToPicture($("photo-overlay"), { clientX: start.x, clientY: start.y }, r.width,
    r.height, img.naturalWidth, img.naturalHeight, "contain");
  const index = at ? ui.boxEdit.boxes.findIndex((b) => at.x >= b[0] && at.x <= b[2]
    && at.y >= b[1] && at.y <= b[3]) : -1;
  if (index < 0) return;
  ui.boxNaming = index;
  await fillProducts();
  $("box-sku-input").value = ui.boxEdit.boxes[index][4] || "";
  $("box-sku-error").textContent = "";
  $("box-sku").showModal();
}

async function nameBox(event) {
  const typed = $("box-sku-input").value.trim();
  const product = typed ? findProduct(typed) : null;
  if (typed && !product) {
    event.preventDefault();
    $("box-sku-error").textContent = `${typed} is not in the catalog: pick a product.`;
    return;
  }
  const i = ui.boxNaming;
  if (!ui.boxEdit || i === undefined || !ui.boxEdit.boxes[i]) return;
  ui.boxEdit.history.push(ui.boxEdit.boxes);
  ui.boxEdit.boxes = ui.boxEdit.boxes.map((b, j) => (j === i ? [...b.slice(0, 4),
    product ? product.sku : ""] : b));
  const photo = await store.getPhoto(ui.photoId);
  if (photo) await renderResult(photo);
}

async function endBoxFix(save) {
  const edit = ui.boxEdit;
  ui.boxEdit = null;
  if (save && edit) {
    await store.addBoxes(edit.id, edit.boxes);
    updatePending();
    link.flush();
    toast(`Boxes saved: ${edit.boxes.length} items`);
  }
  const photo = await store.getPhoto(ui.photoId);
  if (photo) await renderResult(photo);
}

async function undoBox() {
  if (!ui.boxEdit || !ui.boxEdit.history.length) return;
  ui.boxEdit.boxes = ui.boxEdit.history.pop();
  const photo = await store.getPhoto(ui.photoId);
  if (photo) await renderResult(photo);
}

// Client coordinates of a point of the shown result picture (tests and the benchmark tap
// boxes with it).
function pictureToClient(x, y) {
  const img = $("photo");
  const rect = $("photo-overlay").getBoundingClientRect();
  const { w, h } = ui.resultSize || { w: img.naturalWidth, h: img.naturalHeight };
  const t = fitTransform(img.naturalWidth || w, img.naturalHeight || h, rect.width, rect.height,
    "contain");
  const kx = (img.naturalWidth || w) / w;
  const ky = (img.naturalHeight || h) / h;
  return { x: rect.left + t.ox + x * kx * t.s, y: rect.top + t.oy + y * ky * t.s };
}

// A location conflict the walker has not answered yet (answers wait in the outbox: shown as
// answered at once, so the same question is not asked twice).
function openConflict(photo) {
  const c = photo.result && photo.result.location_conflict;
  return c && !photo.locationAnswer ? c : null;
}

function renderConflict(photo) {
  const c = openConflict(photo);
  const box = $("loc-conflict");
  box.hidden = !c;
  if (!c) return null;
  const read = $("loc-use-read");
  const keep = $("loc-keep-chosen");
  if (c.reason === "mismatch") {
    $("loc-conflict-msg").textContent = `The bin label in the photo says ${c.read}, but you `
      + `chose ${c.chosen}. Which bay is this?`;
    read.textContent = `It is ${c.read} (label)`;
    read.onclick = () => answerLocation(photo, c.read, false);
    keep.textContent = `It is ${c.chosen}`;
    keep.onclick = () => answerLocation(photo, c.chosen, false);
    keep.hidden = false;
  } else {
    $("loc-conflict-msg").textContent = `${c.read} is not a location in the catalog.`;
    read.textContent = `Record ${c.read} as a new location`;
    read.onclick = () => answerLocation(photo, c.read, true);
    keep.textContent = "Choose another location";
    keep.onclick = () => openLocations((loc) => answerLocation(photo, loc, false));
    keep.hidden = false;
  }
  return c;
}

async function answerLocation(photo, location, isNew) {
  await store.addLocation(photo.id, location, isNew);
  if (!isNew) await setLocation(location);
  buzz(30);
  await renderResult(await store.getPhoto(photo.id));
  link.kick();
  updatePending();
}

// Is this photo counted in its bay? Tells the walker when a retake replaced it (or it replaced
// an earlier photo), and what the bay adds up to when it has several parts.
function renderBayNote(photo) {
  const r = photo.result;
  const note = $("bay-note");
  const counted = !isReplaced(photo);
  let text = "";
  if (!counted) {
    text = r && r.bay_confirmed
      ? "Not counted: this bay was confirmed already (a manager can reopen it)."
      : "Not counted: a retake of this bay replaced this photo.";
  } else if (r && (r.parts || []).length > 1) {
    const total = (r.bay_rows || []).reduce((n, row) => n + (Number(row.Quantity_Counted) || 0), 0);
    text = `${r.parts.length} photos of this bay, summed: ${total} items. Items seen in two `
      + "photos are counted twice.";
  } else if (r && (r.replaced || []).length) {
    text = "Retake: this photo replaces the earlier photo of this bay.";
  }
  note.textContent = text;
  note.hidden = !text;
  note.classList.toggle("replaced", !counted);
  return counted;
}

// The correction sheet: a line's quantity, Damaged, product (change the SKU, or name the
// unidentified items) and expiry; with no line, "Add missed SKU".
function mainLine(photo, sku) {
  return ((photo.result && photo.result.rows) || []).find((r) => r.SKU === sku && !r._split);
}

// The items of a SKU split off as Damaged in this photo (0: none).
function damagedOf(photo, sku) {
  const r = ((photo.result && photo.result.rows) || []).find((x) => x.SKU === sku
    && x._split === "Damaged");
  return r ? Number(r.Quantity_Counted) || 0 : 0;
}

async function openEdit(photo, row) {
  const edit = row && photo.edits && photo.edits[row.SKU];
  const mode = !row ? "add" : row.SKU ? "line" : "assign";
  ui.edit = {
    id: photo.id, mode, sku: row ? row.SKU : "", qty: row ? lineQuantity(photo, row) : 1,
    typed: false,
    damaged: edit ? edit.condition === "Damaged" : !!row && row.Condition === "Damaged",
    origCondition: (row && row.Condition) || "Good",
    origExpiry: (row && row.Expiration_Date) || "",
  };
  $("edit-sku").textContent = mode === "add" ? "Add missed SKU"
    : mode === "assign" ? "Unidentified items" : row.SKU;
  $("edit-desc").textContent = mode === "add" ? "A product the photo did not count."
    : mode === "assign" ? "Which product are these? Search and pick it."
      : row.Product_Description || "";
  $("edit-new-sku").value = (edit && edit.newSku) || "";
  $("edit-new-sku").placeholder = mode === "line" ? "keep this product" : "SKU, name or code";
  $("edit-expiry").value = (edit && edit.expiry) || ui.edit.origExpiry;
  ui.edit.origSplit = row ? damagedOf(photo, row.SKU) : 0;
  ui.edit.qty += ui.edit.origSplit; // the sheet edits the SKU's total here
  $("edit-split").value = ui.edit.origSplit ? String(ui.edit.origSplit) : "";
  $("edit-split").disabled = mode !== "line";
  $("edit-error").textContent = "";
  renderEdit();
  $("edit").showModal();
  await fillProducts();
}

// Catalog products for the search (kept for offline use), matched by SKU, name or barcode.
async function fillProducts() {
  let list = await store.getKv("products", []);
  if (link.token && link.state === "online") {
    try {
      list = (await api("products")).products || [];
      await store.setKv("products", list);
    } catch {
      // offline or refused: the last list
    }
  }
  $("products").replaceChildren(...list.map((p) => el("option", {
    value: p.sku, label: `${p.description}${p.barcode ? ` · ${p.barcode}` : ""}`,
  })));
  ui.products = list;
}

// The product codes a carton or a pack carries (retail and logistics symbologies).
const PRODUCT_FORMATS = ["ean_13", "ean_8", "upc_a", "upc_e", "code_128", "itf", "data_matrix",
  "qr_code"];

// The catalog product a scanned code names: its barcode as printed, as a GTIN-13 (UPC-A with
// a leading 0) or inside a GS1 string's (01) GTIN-14.
function productForCode(raw) {
  const text = String(raw || "").trim();
  const digits = text.replace(/^\(01\)|^01(?=\d{14})/, "").replace(/\D.*$/, "");
  const tries = [text, digits, digits.replace(/^0+/, ""), digits.padStart(13, "0"),
    digits.length === 14 ? digits.slice(1) : ""];
  const list = ui.products || [];
  for (const t of tries.filter(Boolean)) {
    const hit = list.find((p) => p.barcode && (p.barcode === t
      || p.barcode.replace(/^0+/, "") === t.replace(/^0+/, "")));
    if (hit) return hit;
  }
  return findProduct(text);
}

// "Scan code" in the correction sheet: the rear camera reads the product's barcode on the
// phone (js/barcodes.js) and picks that catalog product.
async function scanProductCode() {
  const msg = $("edit-error");
  msg.textContent = "Point the camera at the product's barcode...";
  try {
    if (!(await cam.ready())) throw new Error("the camera shows no picture");
    const reader = await barcodeReader(PRODUCT_FORMATS);
    stats.barcodeEngine = reader.engine;
    for (let i = 0; i < 40 && $("edit").open; i++) {
      const frame = cam.frameToCanvas(1920);
      const found = frame ? await reader.detect(frame) : [];
      const product = found.map((c) => productForCode(c.rawValue)).find(Boolean);
      if (product) {
        $("edit-new-sku").value = product.sku;
        msg.textContent = `${product.sku}: ${product.description}`;
        buzz(40);
        return;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    msg.textContent = "No catalog product's code seen: type the SKU or the name.";
  } catch (e) {
    msg.textContent = `Cannot scan: ${e.message}`;
  }
}

function findProduct(text) {
  const t = (text || "").trim().toLowerCase();
  if (!t) return null;
  const list = ui.products || [];
  return list.find((p) => p.sku.toLowerCase() === t) || list.find((p) => p.barcode === t)
    || list.find((p) => p.description.toLowerCase() === t) || null;
}

function renderEdit() {
  $("qty").textContent = String(ui.edit.qty);
  $("damaged").setAttribute("aria-pressed", String(ui.edit.damaged));
  $("damaged").textContent = ui.edit.damaged ? "Damaged (tap to undo)" : "Mark Damaged";
}

// What the sheet asks the gateway for, or an error to show (the sheet stays open).
function editRequest(e) {
  const typed = $("edit-new-sku").value.trim();
  const product = findProduct(typed);
  if (typed && !product) return { error: `${typed} is not in the catalog: pick a product.` };
  if (e.mode !== "line" && !product) return { error: "Pick the product first." };
  const expiry = $("edit-expiry").value;
  const extra = { expiry: expiry !== e.origExpiry ? expiry : undefined };
  const condition = e.damaged ? "Damaged" : e.origCondition === "Damaged" ? "Good" : null;
  if (e.mode === "add") return { sku: product.sku, condition, extra };
  const split = Number($("edit-split").value || 0);
  if (!Number.isInteger(split) || split < 0 || split > e.qty) {
    return { error: `Damaged must be 0 to ${e.qty}.` };
  }
  // The total includes the split-off items, so the split goes with every change of the line.
  if (split || e.origSplit) extra.split = { quantity: split, condition: "Damaged" };
  if (product && product.sku !== e.sku) extra.newSku = product.sku;
  if (e.mode === "assign" && !extra.newSku) return { error: "Pick the product first." };
  return { sku: e.sku, condition, extra };
}

async function saveEdit() {
  const e = ui.edit;
  if (!e) return;
  const req = editRequest(e);
  if (req.error) {
    $("edit-error").textContent = req.error;
    $("edit").showModal();
    return;
  }
  await store.addCorrection(e.id, req.sku, e.qty, req.condition, req.extra);
  buzz(30);
  ui.edit = null;
  await renderResult(await store.getPhoto(ui.photoId));
  link.kick();
  updatePending();
}

function keypad(k) {
  const e = ui.edit;
  if (k === "clear") {
    e.qty = 0;
    e.typed = true;
  } else if (k === "back") {
    e.qty = Math.floor(e.qty / 10);
    e.typed = true;
  } else {
    e.qty = e.typed ? Math.min(99999, e.qty * 10 + Number(k)) : Number(k);
    e.typed = true;
  }
  renderEdit();
}

// Why a bay deserves a second look before it is confirmed (empty: nothing). `tasks`: today's
// count list; a bin on it for a recount (a shrinkage alert) is looked at, not tapped through.
function confirmReasons(photo, tasks = []) {
  const rows = (photo.result && photo.result.rows) || [];
  const reasons = [];
  const where = locationFromResult(photo.result) || photo.location;
  const recount = tasks.find((t) => t.recount && t.location === where);
  if (recount) {
    reasons.push(`a recount was asked for ${where} (${recount.sku}: stock moves do not `
      + "explain its last count)");
  }
  if (photo.recount) reasons.push(`sent back for a recount: ${photo.recount.note}`);
  const low = rows.filter((r) => confidenceOf(r).level === "low" && !(photo.edits || {})[r.SKU]);
  if (low.length) reasons.push(`low confidence on ${low.map((r) => r.SKU || "?").join(", ")}`);
  if (rows.some((r) => !r.SKU && Number(r.Quantity_Counted) > 0)) {
    reasons.push("unidentified items");
  }
  const refused = Object.entries(photo.refused || {});
  if (refused.length) reasons.push(`refused correction (${refused.map(([k]) => k).join(", ")})`);
  return reasons;
}

async function confirmBay() {
  const id = ui.photoId;
  if (!id) return;
  const photo = await store.getPhoto(id);
  const reasons = photo ? confirmReasons(photo, await store.getKv("tasks", [])) : [];
  if (reasons.length && ui.confirmArmed !== id) {
    ui.confirmArmed = id; // the second tap confirms
    const why = $("confirm-why");
    why.textContent = `Check before confirming: ${reasons.join("; ")}. Tap again to confirm.`;
    why.hidden = false;
    $("confirm").textContent = "Confirm anyway";
    buzz([80, 40, 80]);
    return;
  }
  ui.confirmArmed = null;
  await store.addConfirm(id);
  await renderResult(await store.getPhoto(id));
  showUndo(id);
  link.kick();
  updatePending();
}

// "Undo confirm" for as long as the confirmation waits on the phone.
function showUndo(id) {
  const b = $("undo-confirm");
  b.hidden = false;
  b.dataset.id = id;
  clearTimeout(ui.undoTimer);
  ui.undoTimer = setTimeout(() => {
    b.hidden = true;
  }, store.CONFIRM_HOLD_MS);
}

async function undoConfirm() {
  const b = $("undo-confirm");
  const id = b.dataset.id;
  b.hidden = true;
  clearTimeout(ui.undoTimer);
  if (id && (await store.undoConfirm(id))) toast("Confirmation undone");
  else toast("Too late: the bay is confirmed (a manager can reopen it)");
  if (ui.photoId === id) await renderResult(await store.getPhoto(id));
  updatePending();
}

async function nextLocation() {
  ui.partOf = null;
  await setLocation(null);
  await show("count");
  openLocations();
}

// ---------- session ----------
function authHeaders() {
  return { Authorization: `Bearer ${link.token}` };
}

// This session's photos (a photo taken before the first connection has no session yet and
// belongs to the one it will be sent in).
async function sessionPhotos() {
  const photos = await store.allPhotos();
  return photos.filter((p) => !p.session || p.session === link.session);
}

// A photo a retake replaced (or that came after its bay was confirmed): kept, not counted.
const isReplaced = (p) => !!(p.replacedBy || (p.result && p.result.current === false));
const isCounted = (p) => p.result && !isReplaced(p);

// Bays of the session in photo order: {key, location, photos (all), current (counted)}.
function groupBays(photos) {
  const bays = new Map();
  for (const p of photos) {
    const key = (p.result && p.result.bay) || p.id;
    if (!bays.has(key)) bays.set(key, { key, photos: [], current: [] });
    const bay = bays.get(key);
    bay.photos.push(p);
    if (isCounted(p)) bay.current.push(p);
    bay.location = locationFromResult(p.result) || p.location || bay.location;
  }
  return [...bays.values()];
}

// The bins with no confirmed bay yet: those on today's count list (GET api/v1/tasks) when
// there is one, else the catalog's locations of the zones (aisle prefix, e.g. "A" of A-01-1)
// this session visited. { left, where }: where, in words, they come from.
async function baysLeft(bays) {
  const done = new Set(bays.filter((b) => b.current.length
    && b.current.every((p) => p.status === "confirmed")).map((b) => b.location));
  const tasks = [...new Set((await store.getKv("tasks", [])).map((t) => t.location))];
  if (tasks.length) {
    return { left: tasks.filter((loc) => !done.has(loc)), where: "on today's count list" };
  }
  const zones = new Set(bays.map((b) => String(b.location || "").split("-")[0]).filter(Boolean));
  const catalog = (await store.getKv("catalogLocations", [])).map((c) => c.location);
  return { left: catalog.filter((loc) => zones.has(loc.split("-")[0]) && !done.has(loc)),
    where: "in this zone" };
}

function money(value) {
  const currency = link.currency || "";
  try {
    if (currency) return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(value);
  } catch {
    // not an ISO code: plain figure with the code
  }
  return `${value.toFixed(2)}${currency ? ` ${currency}` : ""}`;
}

// Renders overlap (a message arrives while one waits on IndexedDB): only the newest one
// writes the screen, so a stale list never replaces a fresh one.
let sessionRenders = 0;

async function renderSession() {
  const run = ++sessionRenders;
  const photos = await sessionPhotos();
  const items = await store.outbox();
  const bays = groupBays(photos);
  const { left, where } = await baysLeft(bays);
  // Every await is done: the screen is written in one go (totals, bays left, the list).
  if (run !== sessionRenders) return;
  $("session-id").textContent = link.session ? `Session ${link.session}` : "No session yet";
  let units = 0;
  let value = 0;
  for (const p of photos.filter(isCounted)) {
    for (const row of p.result.rows || []) {
      const q = lineQuantity(p, row);
      units += q;
      value += q * (parseFloat(row.Unit_Price) || 0);
    }
  }
  const confirmed = bays.filter((b) => b.current.length
    && b.current.every((p) => p.status === "confirmed"));
  $("t-bays").textContent = String(confirmed.length);
  $("t-photos").textContent = String(photos.filter(isCounted).length);
  $("t-items").textContent = String(units);
  $("t-value").textContent = money(value);
  $("bays-left").textContent = left.length
    ? `${left.length} bays left ${where}: ${left.slice(0, 8).join(", ")}`
      + `${left.length > 8 ? ", ..." : ""}`
    : bays.length ? `No bays left ${where}.` : "";

  const byId = new Map(photos.map((p) => [p.id, p]));
  const queued = $("queued");
  queued.replaceChildren();
  for (const it of items) {
    const p = byId.get(it.id);
    const where = (p && p.location) || "no location";
    const what = it.kind === "photo" ? `Photo at ${where}`
      : it.kind === "correct"
        ? `Correction ${it.sku} -> ${it.quantity}${it.condition ? ` (${it.condition})` : ""}`
        : it.kind === "location" ? `Location ${it.location} for the photo at ${where}`
          : `Confirm ${where}`;
    queued.append(el("li", { class: "wait" }, `${what}${p && p.note ? ` · ${p.note}` : ""}`));
  }
  for (const p of photos) {
    if (p.status === "acked" && !p.result && !p.error) {
      queued.append(el("li", { class: "wait" }, `Photo at ${p.location || "no location"}: `
        + "stored on the gateway, waiting for the count"));
    }
  }
  if (!queued.children.length) queued.append(el("li", { class: "empty" }, "Nothing waiting."));

  const failed = $("failed");
  failed.replaceChildren();
  for (const p of photos.filter((x) => x.error)) {
    failed.append(el("li", { class: "fail" }, `${p.location || "no location"}: ${p.error}`));
  }
  if (!failed.children.length) failed.append(el("li", { class: "empty" }, "Nothing failed."));
  renderBayList(bays);
}

// One entry per bay, newest first, opening its current photo; replaced photos are history.
function renderBayList(bays) {
  const bayList = $("bays");
  bayList.replaceChildren();
  for (const bay of [...bays].reverse()) {
    const shown = bay.current[bay.current.length - 1] || bay.photos[bay.photos.length - 1];
    const n = bay.current.reduce((sum, p) => sum + (p.result.rows || [])
      .reduce((s2, r) => s2 + lineQuantity(p, r), 0), 0);
    const state = bay.current.length ? PHOTO_STATE[shown.status] || shown.status
      : shown.result ? "replaced (not counted)" : PHOTO_STATE[shown.status] || shown.status;
    const cls = state === "confirmed" ? "done" : shown.error ? "fail" : "wait";
    const when = new Date(shown.created).toTimeString().slice(0, 5);
    const parts = bay.current.length > 1 ? ` · ${bay.current.length} parts` : "";
    const history = bay.photos.length - bay.current.length;
    const label = `${when} ${bay.location || "no location"} · `
      + `${shown.result ? `${n} items` : "not counted yet"}${parts} · ${state}`
      + `${history ? ` · ${history} replaced photo${history > 1 ? "s" : ""}` : ""}`;
    bayList.append(el("li", { class: cls }, el("button", {
      type: "button",
      onclick: async () => {
        ui.photoId = shown.id;
        await show("result");
        await renderResult(await store.getPhoto(shown.id));
      },
    }, label)));
  }
  if (!bayList.children.length) bayList.append(el("li", { class: "empty" }, "No photos yet."));
}

// ---------- manager review ----------
async function api(path, init = {}) {
  const r = await fetch(`api/v1/${path}`, {
    ...init, headers: { ...authHeaders(), ...(init.body ? { "Content-Type": "application/json" } : {}) },
  });
  const body = r.headers.get("Content-Type")?.includes("json") ? await r.json() : null;
  if (!r.ok) throw new Error((body && body.message) || `HTTP ${r.status}`);
  return body;
}

const stockScreen = new StockScreen({ api, el, toast, $ });

async function renderReview() {
  const msg = $("review-msg");
  msg.textContent = "Loading...";
  let day;
  try {
    day = await api("review");
  } catch (e) {
    msg.textContent = `Review not available: ${e.message}`;
    return;
  }
  const open = day.queue.filter((q) => !q.confirmed);
  msg.textContent = `${day.sessions.length} sessions today · ${open.length} bays open · `
    + `${open.filter((q) => q.reasons.length).length} need a look`
    + `${day.erp && day.erp.state === "unavailable" ? " · ERP not reachable: no variance shown" : ""}`;
  const sheet = $("review-sheet");
  sheet.hidden = !day.sheet_url;
  if (day.sheet_url) sheet.href = day.sheet_url;
  $("review-sessions").replaceChildren(...day.sessions.map((s) => el("li",
    { class: s.bays && s.confirmed === s.bays ? "done" : "wait" },
    `${s.walker}: ${s.confirmed} of ${s.bays} bays confirmed · ${s.photos} photos · `
    + `since ${new Date(s.started).toTimeString().slice(0, 5)}`)));
  if (!day.sessions.length) {
    $("review-sessions").append(el("li", { class: "empty" }, "No sessions today."));
  }
  const queue = $("review-queue");
  queue.replaceChildren(...day.queue.map(reviewItem));
  if (!day.queue.length) queue.append(el("li", { class: "empty" }, "Nothing counted yet."));
  for (const item of day.queue) loadReviewPhoto(item);
}

function reviewItem(q) {
  const cls = ["review-item", q.reasons.length && "flagged", q.confirmed && "done"]
    .filter(Boolean).join(" ");
  const note = el("input", { type: "text", id: `note-${q.count_id}`,
    "aria-label": `Note for the recount of ${q.location}`, placeholder: "what to recount" });
  const rows = q.rows.map((r) => el("li", {}, `${r.SKU || "unidentified"}: `
    + `${r.Quantity_Counted}`
    + `${r.System_Quantity !== undefined && r.System_Quantity !== "" ? ` · ERP ${r.System_Quantity}` : ""}`
    + `${r.Flags && r.Flags.length ? ` (${r.Flags.join(", ")})` : ""}`));
  return el("li", { class: cls, "data-count": q.count_id },
    el("h3", {}, `${q.location || "no location"} · ${q.walker}`
      + `${q.confirmed ? " · confirmed" : ""}`),
    q.reasons.length ? el("ul", { class: "reasons" }, ...q.reasons.map((r) => el("li", {}, r)))
      : null,
    el("div", { class: "photo" }, el("img", { alt: `Photo of ${q.location}` }),
      el("canvas", { "aria-hidden": "true" })),
    el("ul", {}, ...rows),
    q.confirmed ? el("div", { class: "actions" },
      el("button", { type: "button", class: "btn", "data-act": "reopen",
        onclick: () => reviewAct(q, "reopen") }, "Reopen"))
      : el("div", { class: "actions" },
      el("button", { type: "button", class: "btn btn-primary", "data-act": "approve",
        onclick: () => reviewAct(q, "approve") }, "Approve"),
      note,
      el("button", { type: "button", class: "btn", "data-act": "recount",
        onclick: () => reviewAct(q, "recount") }, "Send back for recount")));
}

async function loadReviewPhoto(q) {
  const li = document.querySelector(`#review-queue [data-count="${q.count_id}"]`);
  if (!li) return;
  try {
    const r = await fetch(`api/v1/counts/${encodeURIComponent(q.count_id)}/photo`,
      { headers: authHeaders() });
    if (!r.ok) return;
    const img = li.querySelector("img");
    img.src = URL.createObjectURL(await r.blob());
    await img.decode().catch(() => {});
    drawBoxes(li.querySelector("canvas"), q.boxes, q.width, q.height, img.naturalWidth,
      img.naturalHeight, "contain", { numbers: false });
  } catch {
    // no photo (retention): the rows still say what was counted
  }
}

async function reviewAct(q, act) {
  try {
    if (act === "approve") {
      await api(`counts/${encodeURIComponent(q.count_id)}/confirm`, { method: "POST" });
      toast(`${q.location} approved`);
    } else if (act === "reopen") {
      await api(`counts/${encodeURIComponent(q.count_id)}/reopen`, { method: "POST" });
      toast(`${q.location} reopened: approve it again to send the new version`);
    } else {
      const note = document.getElementById(`note-${q.count_id}`).value.trim();
      if (!note) {
        toast("Say what to recount");
        return;
      }
      await api(`counts/${encodeURIComponent(q.count_id)}/recount`,
        { method: "POST", body: JSON.stringify({ note }) });
      toast(`${q.location} sent back to ${q.walker}`);
    }
  } catch (e) {
    toast(`Not done: ${e.message}`);
  }
  await renderReview();
}

async function downloadCsv() {
  if (!link.session) return toast("No session yet");
  try {
    const r = await fetch(`api/v1/sessions/${encodeURIComponent(link.session)}/counts.csv`,
      { headers: authHeaders() });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const url = URL.createObjectURL(await r.blob());
    const a = el("a", { href: url, download: `shelfcount-${link.session}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    toast(`CSV not available: ${e.message}`);
  }
}

// ---------- status ----------
async function updatePending() {
  const items = await store.outbox();
  const b = $("pending");
  b.hidden = items.length === 0;
  b.textContent = `${items.length} pending`;
}

function renderRole() {
  $("review-btn").hidden = link.role !== "manager";
  $("stock-btn").hidden = link.role !== "manager";
}

function renderNet(state, why) {
  const n = $("net");
  const text = {
    online: "online", connecting: "connecting", offline: "offline", unpaired: "not paired",
  };
  n.textContent = text[state] || state;
  n.title = why || "";
  const colour = { online: "pill-on", connecting: "pill-wait" }[state] || "pill-off";
  n.className = `pill ${colour}`;
}

// ---------- wiring ----------
function wire() {
  $("pair-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = tokenFrom($("pair-token").value);
    if (token) pairWith(token, $("pair-device").value.trim());
  });
  $("pair-scan").addEventListener("click", startQrScan);
  $("shutter").addEventListener("click", shutter);
  $("torch").addEventListener("click", async () => {
    const on = !cam.torchOn;
    if (await cam.setTorch(on)) $("torch").setAttribute("aria-pressed", String(on));
  });
  $("loc-btn").addEventListener("click", () => openLocations());
  $("undo-confirm").addEventListener("click", undoConfirm);
  $("add-sku").addEventListener("click", async () => {
    const p = await store.getPhoto(ui.photoId);
    if (p) await openEdit(p, null);
  });
  $("fix-boxes").addEventListener("click", startBoxFix);
  $("edit-scan").addEventListener("click", scanProductCode);
  $("photo-wrap").addEventListener("click", tapPhoto);
  $("photo-wrap").addEventListener("pointerdown", pressPhoto);
  $("photo-wrap").addEventListener("pointerup", releasePhoto);
  $("photo-wrap").addEventListener("pointermove", dragPhoto);
  $("photo-wrap").addEventListener("pointercancel", releasePhoto);
  $("box-sku-save").addEventListener("click", nameBox);
  $("boxes-undo").addEventListener("click", undoBox);
  $("boxes-save").addEventListener("click", () => endBoxFix(true));
  $("boxes-cancel").addEventListener("click", () => endBoxFix(false));
  $("add-part").addEventListener("click", async () => {
    ui.partOf = ui.photoId;
    await show("count");
    toast("Next photo: another part of this bay (summed)");
  });
  $("next-loc").addEventListener("click", nextLocation);
  $("result-next-loc").addEventListener("click", nextLocation);
  $("session-btn").addEventListener("click", () => show("session"));
  $("pending").addEventListener("click", () => show("session"));
  $("back-count").addEventListener("click", () => show("count"));
  $("next-photo").addEventListener("click", () => show("count"));
  $("confirm").addEventListener("click", confirmBay);
  $("csv").addEventListener("click", downloadCsv);
  $("new-session").addEventListener("click", async () => {
    const pending = (await store.outbox()).length;
    const open = groupBays(await sessionPhotos()).filter((b) => b.current.length
      && !b.current.every((p) => p.status === "confirmed")).length;
    const ask = ["Start a new, empty session?"];
    if (open) ask.push(`${open} bays of this session are not confirmed.`);
    if (pending) ask.push(`${pending} items still wait to be sent.`);
    if (!confirm(ask.join(" "))) return;
    await link.newSession();
    toast("New session started");
    await renderSession();
  });
  $("unpair").addEventListener("click", async () => {
    const pending = (await store.outbox()).length;
    const sure = pending ? `${pending} items are not sent yet. Unpair anyway and lose them?`
      : "Unpair this phone? A manager's token is needed to pair it again.";
    if (!confirm(sure)) return;
    link.goOffline();
    await store.clearAll();
    location.reload();
  });
  $("detected").addEventListener("click", async () => {
    if (ui.detected) await setLocation(ui.detected);
    buzz(40);
  });
  $("scan-label").addEventListener("click", scanLabel);
  $("loc-form").addEventListener("submit", async (e) => {
    if (e.submitter && e.submitter.value === "set") {
      const v = $("loc-input").value.trim().toUpperCase();
      if (v) await pickLocation(v);
    }
    locationPick = null;
  });
  $("minus").addEventListener("click", () => {
    ui.edit.qty = Math.max(0, ui.edit.qty - 1);
    ui.edit.typed = false;
    renderEdit();
  });
  $("plus").addEventListener("click", () => {
    ui.edit.qty += 1;
    ui.edit.typed = false;
    renderEdit();
  });
  for (const b of $("keypad").querySelectorAll("button")) {
    b.addEventListener("click", () => keypad(b.dataset.k || b.textContent.trim()));
  }
  $("damaged").addEventListener("click", () => {
    ui.edit.damaged = !ui.edit.damaged;
    renderEdit();
  });
  $("edit").addEventListener("close", () => {
    if ($("edit").returnValue === "save") saveEdit();
    else ui.edit = null;
  });

  $("review-btn").addEventListener("click", () => show("review"));
  $("stock-btn").addEventListener("click", () => show("stock"));
  $("stock-refresh").addEventListener("click", () => stockScreen.render());
  $("stock-back").addEventListener("click", () => show("count"));
  $("review-back").addEventListener("click", () => show("count"));
  $("review-refresh").addEventListener("click", renderReview);
  link.addEventListener("recount", (e) => {
    toast(`Recount ${e.detail.by ? `(${e.detail.by})` : ""}: ${e.detail.note}`);
    buzz([200, 100, 200]);
  });
  link.addEventListener("state", (e) => {
    renderNet(e.detail.state, e.detail.why);
    renderRole();
    if (e.detail.state === "online" && ui.screen === "pair" && !link.pairing) show("count");
    if (e.detail.state === "unpaired" && ui.screen !== "pair") {
      $("pair-error").textContent = e.detail.why ? `Pairing needed: ${e.detail.why}` : "";
      show("pair");
    }
    updatePending();
  });
  link.addEventListener("changed", async (e) => {
    updatePending();
    if (ui.screen === "result" && e.detail.id && e.detail.id === ui.photoId) {
      const p = await store.getPhoto(ui.photoId);
      await renderResult(p);
      if (p && p.status === "confirmed") {
        buzz([40, 40, 40]);
        beep(1320, 150);
        toast(`Bay ${p.location || ""} confirmed`);
      }
    }
    if (ui.screen === "session") renderSession();
  });
  link.addEventListener("result", async (e) => {
    updatePending();
    const { id, photo } = e.detail;
    if (!ui.location) {
      const loc = locationFromResult(photo.result);
      if (loc) await setLocation(loc);
    }
    if (ui.screen === "result" && id === ui.photoId) {
      await renderResult(photo);
      await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
      if (ui.shutterAt !== null) {
        stats.shutters.push(performance.now() - ui.shutterAt);
        ui.shutterAt = null;
      }
      buzz([40, 30, 40]);
      beep();
    } else {
      // A queued photo was counted in the background.
      const n = (photo.result.rows || []).reduce((sum, r) => sum + lineQuantity(photo, r), 0);
      toast(`${photo.location || locationFromResult(photo.result) || "Photo"}: ${n} items counted`);
    }
    if (ui.screen === "session") renderSession();
    store.pruneBlobs();
  });
  link.addEventListener("progress", (e) => showProgress(e.detail));
  link.addEventListener("gateway-error", (e) => {
    const m = e.detail;
    toast(`${m.code || "error"}: ${m.message || ""}`);
    buzz([200]);
  });
  addEventListener("resize", () => {
    if (ui.screen === "result") store.getPhoto(ui.photoId).then(renderResult);
  });
}

async function main() {
  wire();
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("sw.js").catch(() => {});
  }
  // Ask that queued photos are never evicted under storage pressure (granted to installed apps).
  navigator.storage?.persist?.().catch(() => {});
  // A pairing link (the QR opened by the phone's camera app): #token=...
  const hashToken = new URLSearchParams(location.hash.replace(/^#/, "")).get("token");
  if (hashToken) history.replaceState(null, "", location.pathname + location.search);
  ui.location = await store.getKv("location");
  link.currency = await store.getKv("currency", "");
  link.reviewBelow = await store.getKv("reviewBelow", 0.6);
  link.role = await store.getKv("role", "walker");
  renderRole();
  renderLocation();
  await link.start();
  window.__sc = { stats, link, store, ui, pictureToClient };
  if (hashToken) {
    await show("pair");
    await pairWith(hashToken, "");
  } else if (link.state === "unpaired") {
    await show("pair");
  } else {
    await show("count");
  }
  updatePending();
}

main();
