// IndexedDB: one object store of JSON values by key, for the device's
// profile (tokens, keys, sessions, feed position), chat metadata and the
// queue of unsent messages. Writes are serialized.

const NAME = 'missive';
const STORE = 'kv';

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

let database = null;
let chain = Promise.resolve();

async function db() {
  database ||= await open();
  return database;
}

function run(mode, body) {
  return db().then(
    (handle) =>
      new Promise((resolve, reject) => {
        const tx = handle.transaction(STORE, mode);
        const result = body(tx.objectStore(STORE));
        tx.oncomplete = () => resolve(result.result);
        tx.onerror = () => reject(tx.error);
        tx.onabort = () => reject(tx.error);
      }),
  );
}

export function get(key) {
  return run('readonly', (store) => store.get(key));
}

export function put(key, value) {
  chain = chain.catch(() => {}).then(() => run('readwrite', (store) => store.put(value, key)));
  return chain;
}

export function clear() {
  chain = chain.catch(() => {}).then(() => run('readwrite', (store) => store.clear()));
  return chain;
}
