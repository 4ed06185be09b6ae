// Durable local state in IndexedDB.
//
// Everything the walker photographs or types is written here *before* it is sent, so a reload,
// a tab crash or a dead connection never loses it. Three stores:
//   kv      - small settings: token, session id, device name, sticky location, recent locations
//   photos  - one record per full photo, keyed by its client UUID (the id the gateway dedupes on):
//             the JPEG blob, location, status, result, local edits, error
//   outbox  - what still has to reach the gateway, in the order it happened (autoIncrement seq):
//             {kind: "photo"|"correct"|"confirm", id, ...}
const DB_NAME = "shelfcount";
const DB_VERSION = 1;
// Keep the JPEGs of this many finished photos for review; older blobs are dropped (the
// gateway has them), their results stay.
const KEEP_BLOBS = 40;

let dbPromise = null;

function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error("transaction aborted"));
  });
}

export function openDb() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const r = indexedDB.open(DB_NAME, DB_VERSION);
      r.onupgradeneeded = () => {
        const db = r.result;
        db.createObjectStore("kv");
        const photos = db.createObjectStore("photos", { keyPath: "id" });
        photos.createIndex("created", "created");
        db.createObjectStore("outbox", { keyPath: "seq", autoIncrement: true });
      };
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
  }
  return dbPromise;
}

async function tx(stores, mode, fn) {
  const db = await openDb();
  const t = db.transaction(stores, mode);
  const out = fn(t);
  await done(t);
  return out;
}

export async function getKv(key, fallback = null) {
  const db = await openDb();
  const v = await req(db.transaction("kv").objectStore("kv").get(key));
  return v === undefined ? fallback : v;
}

export async function setKv(key, value) {
  await tx(["kv"], "readwrite", (t) => t.objectStore("kv").put(value, key));
}

export async function clearAll() {
  await tx(["kv", "photos", "outbox"], "readwrite", (t) => {
    for (const s of ["kv", "photos", "outbox"]) t.objectStore(s).clear();
  });
}

// A new photo and its outbox entry are written in ONE transaction: either both exist or neither.
export async function addPhoto(photo) {
  await tx(["photos", "outbox"], "readwrite", (t) => {
    t.objectStore("photos").put(photo);
    t.objectStore("outbox").add({ kind: "photo", id: photo.id, created: photo.created });
  });
}

export async function getPhoto(id) {
  const db = await openDb();
  return (await req(db.transaction("photos").objectStore("photos").get(id))) || null;
}

export async function allPhotos() {
  const db = await openDb();
  const list = await req(db.transaction("photos").objectStore("photos").getAll());
  return list.sort((a, b) => a.created - b.created);
}

// Read-modify-write of one photo record; `fn` mutates the record in place.
export async function updatePhoto(id, fn) {
  let out = null;
  await tx(["photos"], "readwrite", (t) => {
    const s = t.objectStore("photos");
    const r = s.get(id);
    r.onsuccess = () => {
      if (!r.result) return;
      fn(r.result);
      s.put(r.result);
      out = r.result;
    };
  });
  return out;
}

// A new correction's client id (`cid`, sent as correction_id): the gateway records a re-sent
// correction once, e.g. one sent again because its answer was lost with the connection.
function correctionId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return [...crypto.getRandomValues(new Uint8Array(16))]
    .map((x) => x.toString(16).padStart(2, "0")).join("");
}

// A correction: the photo's local edit and the outbox entry in one transaction. An unsent
// correction of the same line is replaced, not repeated, so the gateway sees the last value once.
// The replacement gets a new id: if the old one did reach the gateway, the new value must still
// be recorded rather than taken for a re-send.
// `extra`: {newSku, expiry} (the line is another product; a fixed expiry date).
// In an outbox transaction: the first entry that `matches` takes `fields`, else `fields` are
// queued as a new entry. A replaced entry gets a new client id: when the old content is already
// on its way, its acknowledgement leaves the new one queued (removeOutbox checks the id).
function replaceUnsentOrAdd(outbox, matches, fields) {
  const c = outbox.openCursor();
  let replaced = false;
  c.onsuccess = () => {
    const cur = c.result;
    if (cur) {
      const v = cur.value;
      if (!replaced && matches(v)) {
        cur.update({ ...v, ...fields, cid: correctionId() });
        replaced = true;
      }
      cur.continue();
    } else if (!replaced) {
      outbox.add({ ...fields, cid: correctionId(), created: Date.now() });
    }
  };
}

export async function addCorrection(id, sku, quantity, condition, extra = {}) {
  const more = {};
  if (extra.newSku) more.newSku = extra.newSku;
  if (extra.expiry !== undefined && extra.expiry !== null) more.expiry = extra.expiry;
  if (extra.split) more.split = extra.split;
  await tx(["photos", "outbox"], "readwrite", (t) => {
    const photos = t.objectStore("photos");
    const g = photos.get(id);
    g.onsuccess = () => {
      const p = g.result;
      if (p) {
        p.edits = p.edits || {};
        p.edits[sku] = { quantity, condition, ...more };
        if (p.refused) delete p.refused[sku];
        photos.put(p);
      }
    };
    replaceUnsentOrAdd(t.objectStore("outbox"),
      (v) => v.kind === "correct" && v.id === id && v.sku === sku,
      { kind: "correct", id, sku, quantity, condition, ...more });
  });
}

// A person's complete set of item boxes for a photo (js/boxedit.js): shown at once, queued
// like a photo, sent once; a newer set replaces one not sent yet.
export async function addBoxes(id, boxes) {
  await tx(["photos", "outbox"], "readwrite", (t) => {
    const photos = t.objectStore("photos");
    const g = photos.get(id);
    g.onsuccess = () => {
      if (g.result) {
        g.result.boxEdit = boxes;
        delete g.result.boxRefused;
        photos.put(g.result);
      }
    };
    replaceUnsentOrAdd(t.objectStore("outbox"), (v) => v.kind === "boxes" && v.id === id,
      { kind: "boxes", id, boxes });
  });
}

// A confirmation waits `holdMs` on the phone before it is sent, so it can be undone.
export const CONFIRM_HOLD_MS = 10000;

export async function addConfirm(id, holdMs = CONFIRM_HOLD_MS) {
  await tx(["photos", "outbox"], "readwrite", (t) => {
    const photos = t.objectStore("photos");
    const g = photos.get(id);
    g.onsuccess = () => {
      if (g.result) {
        g.result.status = g.result.status === "confirmed" ? "confirmed" : "confirming";
        photos.put(g.result);
      }
    };
    t.objectStore("outbox").add({ kind: "confirm", id, created: Date.now(),
      notBefore: Date.now() + holdMs });
  });
}

// Undo a confirmation that has not left the phone yet; true when it was taken back.
export async function undoConfirm(id) {
  let undone = false;
  await tx(["photos", "outbox"], "readwrite", (t) => {
    const outbox = t.objectStore("outbox");
    const c = outbox.openCursor();
    c.onsuccess = () => {
      const cur = c.result;
      if (!cur) return;
      if (cur.value.kind === "confirm" && cur.value.id === id && !cur.value.sentAt) {
        cur.delete();
        undone = true;
        const photos = t.objectStore("photos");
        const g = photos.get(id);
        g.onsuccess = () => {
          if (g.result && g.result.status === "confirming") {
            g.result.status = "counted";
            photos.put(g.result);
          }
        };
      }
      cur.continue();
    };
  });
  return undone;
}

// Mark an outbox item as on its way (a confirmation can then no longer be undone).
export async function markSent(seq) {
  await tx(["outbox"], "readwrite", (t) => {
    const outbox = t.objectStore("outbox");
    const g = outbox.get(seq);
    g.onsuccess = () => {
      if (g.result) outbox.put({ ...g.result, sentAt: Date.now() });
    };
  });
}

// The walker's answer to a location conflict (the gateway moves every line of the photo there;
// `isNew` records a location the catalog does not list). Shown at once, sent when online.
export async function addLocation(id, location, isNew) {
  await tx(["photos", "outbox"], "readwrite", (t) => {
    const photos = t.objectStore("photos");
    const g = photos.get(id);
    g.onsuccess = () => {
      if (g.result) {
        g.result.locationAnswer = location;
        photos.put(g.result);
      }
    };
    t.objectStore("outbox").add({ kind: "location", id, location, isNew: !!isNew,
      created: Date.now() });
  });
}

export async function outbox() {
  const db = await openDb();
  return req(db.transaction("outbox").objectStore("outbox").getAll());
}

// Remove a sent item. A correction is removed only if it still has the id that was sent: one
// replaced by a newer value of the same line while in flight stays queued and goes next.
export async function removeOutbox(seq, cid = undefined) {
  await tx(["outbox"], "readwrite", (t) => {
    const outbox = t.objectStore("outbox");
    if (cid === undefined) {
      outbox.delete(seq);
      return;
    }
    const g = outbox.get(seq);
    g.onsuccess = () => {
      if (g.result && g.result.cid === cid) outbox.delete(seq);
    };
  });
}

// Drop the blobs of old finished photos so storage stays bounded on a long shift.
export async function pruneBlobs() {
  const photos = await allPhotos();
  const finished = photos.filter((p) => p.blob && p.result && p.status !== "queued");
  const drop = finished.slice(0, Math.max(0, finished.length - KEEP_BLOBS));
  for (const p of drop) {
    await updatePhoto(p.id, (r) => {
      delete r.blob;
    });
  }
}
