// The bundle as the app sees it: bundle/manifest.json + the files `hai-edge pwa build` copied
// (listed in app.json). Every file is checked against its sha256 in the manifest before use,
// like the Python runtimes do, so a half-cached or edited file is refused by name.

import { EnergyHeadDetector, EnergyOnlyDetector } from './cough.js';
import { audioSpec } from './features.js';
import { headFromEntry } from './heads.js';

export class BundleError extends Error {
  constructor(msg) { super(msg); this.name = 'BundleError'; }
}

const DETECTOR_KINDS = ['energy', 'energy_head'];

async function sha256Hex(buf) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function fetchOk(url) {
  const r = await fetch(url);
  if (!r.ok) throw new BundleError(`${url}: HTTP ${r.status}`);
  return r;
}

/** Load app.json, the manifest and every shipped file (hash-verified). */
export async function loadBundle(base = 'bundle/') {
  const app = await (await fetchOk('app.json')).json();
  const manifest = await (await fetchOk(base + 'manifest.json')).json();
  if (manifest.schema_version !== 1) throw new BundleError(`manifest: unknown schema_version ${manifest.schema_version}; this app reads version 1`);
  if (manifest.modality !== 'audio') throw new BundleError(`bundle ${manifest.name} is not an audio bundle; cough screening needs one`);
  const files = {};
  for (const name of app.bundle_files) {
    const rec = manifest.files && manifest.files[name];
    if (!rec) throw new BundleError(`${name} is not listed in the manifest's files`);
    const buf = await (await fetchOk(base + name)).arrayBuffer();
    if (buf.byteLength !== rec.size || (await sha256Hex(buf)) !== rec.sha256.toLowerCase()) {
      throw new BundleError(`${name} was modified or is incomplete (sha256 mismatch)`);
    }
    files[name] = buf;
  }
  const json = (name) => JSON.parse(new TextDecoder().decode(files[name]));
  const spec = audioSpec(manifest.preprocessing);
  const entry = manifest.models.find((m) => m.id === app.model_id);
  if (!entry) throw new BundleError(`model ${app.model_id} is not in the manifest`);
  if (entry.inputs[0].dtype && entry.inputs[0].dtype !== 'float32') throw new BundleError(`model ${entry.id}: ${entry.inputs[0].dtype} input is not supported (float32)`);
  const heads = [];
  let detector = null;
  const detectors = (manifest.heads || []).filter((h) => h.role === 'detector');
  if (detectors.length > 1) throw new BundleError('more than one event detector declared');
  for (const h of manifest.heads || []) {
    if ((h.role ?? 'head') !== 'head') continue;
    if (!(h.file in files)) throw new BundleError(`head ${h.name}: its file ${h.file} was not shipped`);
    heads.push(headFromEntry(h, json(h.file), manifest.embedding_dim));
  }
  const det = detectors[0];
  if (!det || det.kind === 'energy') {
    detector = new EnergyOnlyDetector(spec.sample_rate, det);
  } else if (det.kind === 'energy_head') {
    if (!(det.file in files)) throw new BundleError(`detector ${det.name}: its file ${det.file} was not shipped`);
    // checked like a scoring head, on the fields a detector entry shares with its head file
    const shared = Object.fromEntries(['name', 'file', 'threshold', 'labels'].filter((k) => k in det).map((k) => [k, det[k]]));
    const head = headFromEntry(shared, json(det.file), manifest.embedding_dim, false);
    detector = new EnergyHeadDetector(spec, det, head);
  } else {
    throw new BundleError(`event detector kind ${JSON.stringify(det.kind)} is not supported by this app (knows: ${DETECTOR_KINDS.join(', ')}); rebuild it with a newer hai-edge`);
  }
  const notices = [...(manifest.notices || [])];
  for (const h of heads) if (h.notice && !notices.includes(h.notice)) notices.push(h.notice);
  if (!heads.length) notices.push('this bundle has no heads: events and windows only, no scores');
  const golden = manifest.golden && manifest.golden.file ? json(manifest.golden.file) : null;
  return { app, manifest, spec, entry, heads, detector, notices, golden, model: files[entry.files[0]] };
}
