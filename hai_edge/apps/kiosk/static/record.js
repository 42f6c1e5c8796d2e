// Cough recording in the page: raw microphone audio (echo cancellation, noise suppression and
// gain control off: they would change the cough), captured by an AudioWorklet and encoded as
// 16-bit mono WAV; a live level check warns within about 2 s when nothing or too much arrives.
import { $, api, state, status } from './api.js';
import { LevelWatch, micProblem, t } from '/shared/plain.js';

let recorder = null;

function encodeWav(samples, rate) {
  const buf = new ArrayBuffer(44 + samples.length * 2);
  const v = new DataView(buf);
  const str = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  str(0, 'RIFF'); v.setUint32(4, 36 + samples.length * 2, true); str(8, 'WAVE');
  str(12, 'fmt '); v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, rate, true); v.setUint32(28, rate * 2, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true);
  str(36, 'data'); v.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    v.setInt16(44 + i * 2, s < 0 ? Math.round(s * 32768) : Math.round(s * 32767), true);
  }
  return new Blob([buf], { type: 'audio/wav' });
}

function hint(kind, text) {
  const el = $('rec-hint');
  el.textContent = text || '';
  el.className = 'hint ' + (kind || '');
  el.hidden = !text;
}

function seconds() { return Math.max(1, Math.min(30, parseFloat($('rec-seconds').value) || 5)); }

async function record() {
  const secs = seconds();
  hint('info', t('rec.waiting'));
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 } });
  const ctx = new AudioContext();
  if (ctx.state !== 'running') await ctx.resume();
  await ctx.audioWorklet.addModule('/static/recorder-worklet.js');
  const src = ctx.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(ctx, 'kiosk-recorder', { numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1, channelCountMode: 'explicit' });
  const sink = ctx.createGain(); sink.gain.value = 0;
  const chunks = []; let total = 0; const want = Math.round(secs * ctx.sampleRate);
  const watch = new LevelWatch(ctx.sampleRate);
  let done;
  const finished = new Promise((r) => { done = r; });
  // The graph delivers exact zeros until the microphone's first samples arrive. They are not
  // audio, and leading digital silence would pin the cough detector's noise floor, so skip
  // them (for at most 1 s: a muted microphone still records, and gets the "quiet" warning).
  let waited = 0;
  node.port.onmessage = (ev) => {
    watch.push(ev.data);
    if (total >= want) return;
    if (!total && waited < ctx.sampleRate && !ev.data.some((v) => v !== 0)) { waited += ev.data.length; return; }
    chunks.push(ev.data); total += ev.data.length;
    let peak = 0; for (const x of ev.data) peak = Math.max(peak, Math.abs(x));
    $('rec-level').value = peak;
    if (total >= want) done();
  };
  const check = setInterval(() => {   // also fires when no block arrives at all
    const v = watch.verdict();
    if (v === 'silent' || v === 'clipping') hint('warn', t('live.' + v));
    else if (v === 'ok') hint('ok', t('live.ok'));
  }, 250);
  src.connect(node); node.connect(sink); sink.connect(ctx.destination);
  recorder = { stop: done };
  $('rec-start').disabled = true; $('rec-stop').disabled = false;
  hint('info', t('rec.recording'));
  await finished;
  clearInterval(check);
  stream.getTracks().forEach((tr) => tr.stop());
  const rate = ctx.sampleRate;
  await ctx.close();
  recorder = null;
  $('rec-start').disabled = false; $('rec-stop').disabled = true; $('rec-level').value = 0;
  const x = new Float32Array(Math.min(total, want)); let off = 0;
  for (const c of chunks) { const k = Math.min(c.length, x.length - off); x.set(c.subarray(0, k), off); off += k; }
  return encodeWav(x, rate);
}

/** Wire the recording buttons; `addCapture(kind, blob, name, source)` stores a result and
 *  `show(capture)` adds a stored one to the page. */
export function setupRecording(addCapture, show) {
  $('rec-start').addEventListener('click', async () => {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) { hint('warn', t('mic.insecure')); return; }
    let wav;
    try {
      wav = await record();
    } catch (e) {
      $('rec-start').disabled = false; $('rec-stop').disabled = true;
      hint('warn', t('mic.' + micProblem(e)));
      return;
    }
    await addCapture('cough', wav, 'browser-recording.wav', 'browser-mic');
    if (!$('rec-hint').classList.contains('warn')) hint('', '');
  });
  $('rec-stop').addEventListener('click', () => { if (recorder) recorder.stop(); });
  $('mic-kiosk').addEventListener('click', async () => {
    const e = state.encounter;
    status(t('status.kiosk_mic', { s: seconds() }), 'info');
    try {
      const c = await api('POST', `/api/encounters/${e.id}/cough/mic`, { seconds: seconds() });
      show(c);
      status(t('status.saved.cough'), 'ok');
    } catch (err) { status(err.message, 'error'); }
  });
}

/** Reset the recording card when an encounter opens; the kiosk button only when it has a mic. */
export function resetRecording() {
  hint('', '');
  $('mic-kiosk').hidden = !(state.info && state.info.mic);
}
