// Service worker: precaches the whole app, onnxruntime-web and the bundle at install, then
// serves everything cache-first, so the app starts and scores with no network. The cache name
// carries a hash of every precached file (filled in by `hai-edge pwa build`): a rebuilt app
// installs a new cache, and the old one is deleted when the new worker activates.
const VERSION = '__HAI_VERSION__';
const PREFIX = 'hai-edge-cough-';
const CACHE = PREFIX + VERSION;
const PRECACHE = __HAI_PRECACHE__;

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(PRECACHE.map((u) => new Request(u, { cache: 'reload' }))))
    .then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith(PREFIX) && k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET' || new URL(req.url).origin !== self.location.origin) return;
  event.respondWith(caches.open(CACHE).then(async (cache) => {
    const hit = await cache.match(req, { ignoreSearch: true });
    if (hit) return hit;
    if (req.mode === 'navigate' && new URL(req.url).pathname.endsWith('/')) {
      const index = await cache.match('./index.html');   // the app's start URL and scope root
      if (index) return index;
    }
    return fetch(req);
  }));
});
