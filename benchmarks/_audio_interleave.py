"""The audio student's numpy front end and its INT8 models timed interleaved, on 1 thread.

Timing the front end and a model at different moments lets a load spike on a shared machine land
on either side, so their comparison flips from run to run. Here both are timed in one loop of
blocks: each block times ``calls`` front-end calls on one recording's stacked windows (with their
grid positions, as ``prepare_audio`` passes them: overlapping windows share frames), then
``calls`` runs of each INT8 model on the resulting inputs fed as the runtime feeds them
(``Embedder.embed_inputs``: one engine call per ``batch_size`` windows), alternating which side
goes first from block to block. Per block and per window: front end ms, model ms and their
ratio; the report gives medians over the blocks and the ratio's spread. A third side times
numpy's float64 ``rfft`` alone on as many frames as the front end transforms: the floor under
the front end, as long as it stays in numpy and keeps its precision. numpy's BLAS runs on
one thread (``one_blas_thread``, as the runtime runs the front end) and each engine on one
intra-op thread.
"""

from __future__ import annotations

import time

import numpy as np


def recording_windows(spec, n_windows: int = 8) -> np.ndarray:  # noqa: ANN001
    """``n_windows`` stacked float32 windows of a synthetic recording (``synthetic_waveform``),
    cut by ``split_windows`` on the hop grid and stacked as ``prepare_audio`` stacks them."""
    from hai_edge.export.golden import synthetic_waveform
    from hai_edge.runtime.frontends import split_windows

    seconds = spec.window_s + (n_windows - 1) * spec.hop_s
    wave = synthetic_waveform(seconds + spec.window_s, spec.sample_rate).astype(np.float32)
    windows = split_windows(wave, spec, "synthetic")[:n_windows]
    if len(windows) < n_windows:
        raise RuntimeError(f"synthetic recording kept {len(windows)} windows, not {n_windows}")
    return np.stack([w.samples for w in windows])


def _block_ms(fn, calls: int, per: int) -> float:  # noqa: ANN001
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) * 1e3 / (calls * per)


def _spread(values: list[float]) -> dict:
    a = np.asarray(values)
    return {"median": float(np.median(a)), "p25": float(np.percentile(a, 25)),
            "p75": float(np.percentile(a, 75)), "min": float(a.min()), "max": float(a.max())}


def interleaved(bundle, blocks: int = 20, calls: int = 25, n_windows: int = 8) -> dict:  # noqa: ANN001
    """Front end and every INT8 model of ``bundle`` (an audio bundle) timed in alternating
    blocks. Returns ``{"frontend_ms": spread, "models": {id: {"engine", "ms": spread,
    "ratio": spread of frontend/model per block}}, ...}``, all ms per window."""
    from hai_edge.runtime import Embedder
    from hai_edge.runtime.frontends import window_features
    from hai_edge.tools import one_blas_thread

    spec = bundle.manifest.preprocessing
    x = recording_windows(spec, n_windows)
    grid = list(range(n_windows))
    shared = (n_windows - 1) * spec.shared_frames[0]  # each window after the first reuses these
    fft_in = np.zeros((n_windows * spec.n_frames - shared, spec.n_fft))
    fft_out = np.empty((fft_in.shape[0], spec.n_fft // 2 + 1), np.complex128)
    ids = [m.id for m in bundle.manifest.models if m.precision.value == "int8"]
    embedders = {}
    for mid in ids:
        try:
            embedders[mid] = Embedder(bundle, model_id=mid, threads=1)
        except Exception as exc:  # an engine that is not installed: leave that model out
            print(f"[audio] {mid}: not timed ({type(exc).__name__}: {exc})", flush=True)
    times: dict[str, list[float]] = {"frontend": [], "fft": [], **{mid: [] for mid in embedders}}
    try:
        with one_blas_thread():
            feats = window_features(x, spec, grid=grid)
            steps = [("frontend", lambda: window_features(x, spec, grid=grid)),
                     ("fft", lambda: np.fft.rfft(fft_in, axis=-1, out=fft_out))]
            for mid, emb in embedders.items():
                emb.embed_inputs(feats)  # warm-up: the engine's first run allocates
                steps.append((mid, lambda emb=emb: emb.embed_inputs(feats)))
            for _ in range(3):
                for _, fn in steps:
                    fn()
            for block in range(blocks):
                for name, fn in (steps if block % 2 == 0 else steps[::-1]):
                    times[name].append(_block_ms(fn, calls, n_windows))
    finally:
        engines = {mid: emb.backend_name for mid, emb in embedders.items()}
        for emb in embedders.values():
            emb.close()
    fe_times, fft_times = times.pop("frontend"), times.pop("fft")
    models = {mid: {"engine": engines[mid], "ms": _spread(t),
                    "ratio": _spread([f / m for f, m in zip(fe_times, t)])}
              for mid, t in times.items()}
    return {"blocks": blocks, "calls_per_block": calls, "windows_per_call": n_windows,
            "frames_per_call": fft_in.shape[0], "frames_shared_per_call": shared,
            "frontend_ms": _spread(fe_times), "fft_ms": _spread(fft_times),
            "fft_share_of_frontend": _spread([f / t for f, t in zip(fft_times, fe_times)]),
            "models": models}


def report(res: dict) -> list[str]:
    """Lines for the console: front end, each model, ratio per block."""
    fe, fft, share = res["frontend_ms"], res["fft_ms"], res["fft_share_of_frontend"]
    lines = [f"[audio] interleaved on 1 thread ({res['blocks']} blocks x {res['calls_per_block']} "
             f"calls, {res['windows_per_call']} windows per call, {res['frames_per_call']} frames "
             f"transformed, {res['frames_shared_per_call']} shared), ms per 2 s window, median "
             f"[p25-p75]: numpy front end {fe['median']:.3f} [{fe['p25']:.3f}-{fe['p75']:.3f}]; "
             f"of which numpy's float64 rfft alone {fft['median']:.3f} "
             f"[{fft['p25']:.3f}-{fft['p75']:.3f}] ({share['median']:.0%} of the front end)"]
    for mid, m in res["models"].items():
        ms, r = m["ms"], m["ratio"]
        lines.append(f"[audio]   {mid} ({m['engine']}): model {ms['median']:.3f} "
                     f"[{ms['p25']:.3f}-{ms['p75']:.3f}]; front end / model per block: median "
                     f"{r['median']:.2f} [p25-p75 {r['p25']:.2f}-{r['p75']:.2f}, "
                     f"min-max {r['min']:.2f}-{r['max']:.2f}]")
    return lines
