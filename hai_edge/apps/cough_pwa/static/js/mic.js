// Microphone capture: getUserMedia with echo cancellation, noise suppression and automatic gain
// off (they reshape a cough and eat stationary sounds), an AudioWorklet that posts raw blocks,
// at the device's own rate (the front end resamples; nothing is resampled by the browser).

/** A microphone problem; `code` names its message in the catalogue (mic.<code>). */
export class MicError extends Error {
  constructor(code, msg) { super(msg); this.name = 'MicError'; this.code = code; }
}

function explain(err) {
  const name = err && err.name;
  if (name === 'NotAllowedError' || name === 'SecurityError') return new MicError('denied', 'microphone permission was denied');
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return new MicError('missing', 'no microphone was found on this device');
  if (name === 'NotReadableError') return new MicError('busy', 'the microphone is in use by another app');
  return new MicError('other', `the microphone could not be opened (${err && err.message ? err.message : err})`);
}

/**
 * Record `seconds` of audio. Callbacks: onStart() once the microphone delivers, onLevel(dbfs)
 * about 20 times a second, onBlock(Float32Array, rate) for every block (live detection),
 * onProgress(secondsDone). `control.stop()` (set here) ends the recording early.
 * Resolves {samples: Float32Array, sampleRate, device, settings}.
 */
export async function recordAudio({ seconds, onStart, onLevel, onBlock, onProgress, control = {} }) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new MicError('insecure', 'this page is not a secure origin (https:// or http://localhost), so the browser gives it no microphone');
  }
  const ctx = new AudioContext();
  let stream = null;
  try {
    if (ctx.state !== 'running') await ctx.resume();
    await ctx.audioWorklet.addModule('capture-worklet.js');
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
    } catch (err) {
      throw explain(err);
    }
    const track = stream.getAudioTracks()[0];
    const rate = ctx.sampleRate;
    const want = Math.round(seconds * rate);
    const chunks = [];
    let total = 0, levelAcc = 0, levelN = 0;
    const src = ctx.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(ctx, 'hai-capture', { numberOfInputs: 1, numberOfOutputs: 1 });
    const sink = ctx.createGain();
    sink.gain.value = 0;
    let lastBlock = performance.now();
    let watchdog = null;
    await new Promise((resolve, reject) => {
      track.addEventListener('ended', () => reject(new MicError('ended', 'the microphone stopped (unplugged or taken by another app)')), { once: true });
      watchdog = setInterval(() => {   // a stalled device must not leave the app waiting forever
        if (performance.now() - lastBlock > 3000) reject(new MicError('stalled', 'no audio is arriving from the microphone'));
      }, 500);
      control.stop = () => resolve();
      node.port.onmessage = (e) => {
        lastBlock = performance.now();
        if (total >= want) return;
        const block = e.data.length > want - total ? e.data.subarray(0, want - total) : e.data;
        chunks.push(block);
        total += block.length;
        for (let i = 0; i < block.length; i++) levelAcc += block[i] * block[i];
        levelN += block.length;
        if (onBlock) onBlock(block, rate);
        if (levelN >= rate / 20) {
          const rms = Math.sqrt(levelAcc / levelN);
          if (onLevel) onLevel(rms > 0 ? 20 * Math.log10(rms) : -Infinity);
          if (onProgress) onProgress(total / rate);
          levelAcc = 0; levelN = 0;
        }
        if (total >= want) resolve();
      };
      src.connect(node); node.connect(sink); sink.connect(ctx.destination);
      if (onStart) onStart();
    }).finally(() => { clearInterval(watchdog); control.stop = null; });
    const samples = new Float32Array(total);
    let off = 0;
    for (const c of chunks) { samples.set(c, off); off += c.length; }
    const settings = track.getSettings ? track.getSettings() : {};
    return { samples, sampleRate: rate, device: track.label || 'microphone', settings };
  } finally {
    if (stream) stream.getTracks().forEach((t) => t.stop());   // the mic indicator goes off
    ctx.close().catch(() => {});
  }
}
