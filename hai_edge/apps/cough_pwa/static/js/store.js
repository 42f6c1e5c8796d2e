// Result history in IndexedDB (results only: the audio itself is never stored).

const DB = 'hai-edge-cough', STORE = 'results', VERSION = 1;

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, VERSION);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'id', autoIncrement: true });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx(mode, fn) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const t = db.transaction(STORE, mode);
    const req = fn(t.objectStore(STORE));
    t.oncomplete = () => { db.close(); resolve(req && req.result); };
    t.onerror = () => { db.close(); reject(t.error); };
  });
}

export const addResult = (record) => tx('readwrite', (s) => s.add(record));
export const listResults = () => tx('readonly', (s) => s.getAll());
export const deleteResult = (id) => tx('readwrite', (s) => s.delete(id));
export const clearResults = () => tx('readwrite', (s) => s.clear());
