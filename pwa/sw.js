// Service worker: keeps the app shell so the walker's app opens with no network at all.
// Shell files are served from the cache at once and refreshed in the background
// (stale-while-revalidate); the API and the WebSocket are never cached.
const CACHE = "shelfcount-shell-v8";
const SHELL = [
  "./",
  "index.html",
  "styles.css",
  "manifest.webmanifest",
  "js/app.js",
  "js/barcodes.js",
  "js/boxedit.js",
  "js/camera.js",
  "js/chart.js",
  "js/draw.js",
  "js/link.js",
  "js/stock.js",
  "js/store.js",
  "vendor/barcode-detector/ponyfill.js",
  "vendor/barcode-detector/zxing-exported.js",
  "vendor/barcode-detector/zxing_reader.wasm",
  "icons/icon-192.png",
  "icons/icon-512.png",
  "icons/icon-maskable-192.png",
  "icons/icon-maskable-512.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== self.location.origin) return;
  const scope = new URL(self.registration.scope);
  const path = url.pathname.slice(scope.pathname.length);
  if (path.startsWith("api/") || path.startsWith("ws/")) return;
  // Navigations (any path, with or without #token=...) get the shell page.
  const key = req.mode === "navigate" ? new Request(scope.href) : req;
  event.respondWith(
    caches.open(CACHE).then(async (cache) => {
      const cached = await cache.match(key, { ignoreSearch: req.mode === "navigate" });
      const fresh = fetch(req)
        .then((res) => {
          if (res.ok && res.type === "basic") cache.put(key, res.clone());
          return res;
        })
        .catch(() => null);
      if (cached) {
        event.waitUntil(fresh);
        return cached;
      }
      return (await fresh) || new Response("offline", { status: 503 });
    }),
  );
});
