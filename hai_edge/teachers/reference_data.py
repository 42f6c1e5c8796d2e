"""Data for ``train_reference``: the real corpora (decoded to 16 kHz once and cached), the
synthetic speech (espeak-ng) and "other" sounds, window bookkeeping, and photo loading. Public:
the demo corpora (``demo.corpora``) and cough scenes (``heads.cough_scenes``) reuse it, so they
select, split and generate exactly what the reference teacher was trained on.

Nothing here imports torch. Cached arrays live under the cache directory, never in the repository;
every synthetic item is generated from the seed, so the same seed gives the same corpus.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.fileio import atomic_write
from hai_edge.errors import HaiEdgeError, InputError
from hai_edge.runtime.decoders import decode_audio, decode_image
from hai_edge.runtime.frontends import (
    AudioFrontendSpec,
    apply_exif_orientation,
    resample,
    split_windows,
    to_mono,
    to_rgb,
)
from hai_edge.corpus import CorpusItem, corpus_hash, load_corpus, split_by_group

__all__ = [
    "AUDIO_CLASSES",
    "CACHE_VERSION",
    "IMAGE_CLASSES",
    "MALIGNANT",
    "PAD_CITATION",
    "SR",
    "Clip",
    "assign_synthetic_split",
    "coloured_noise",
    "crop",
    "espeak_version",
    "load_rgb",
    "other_clips",
    "phone_band",
    "real_audio",
    "speech_clips",
    "window_starts",
]

AUDIO_CLASSES = ("cough", "infant_cry", "speech", "other")
IMAGE_CLASSES = ("ACK", "BCC", "MEL", "NEV", "SCC", "SEK")
MALIGNANT = frozenset({"BCC", "MEL", "SCC"})
PAD_CITATION = ("Pacheco, A. G. C. et al. PAD-UFES-20: a skin lesion dataset composed of patient "
                "data and clinical images collected from smartphones. Data in Brief 32 (2020) "
                "106221")
CACHE_VERSION = "v1"
SR = 16000


def _log(msg: str) -> None:
    print(msg, flush=True)


@dataclasses.dataclass
class Clip:
    audio: np.ndarray  # float32 mono at 16 kHz
    cls: int
    source: str  # report row: cough-ru/call-center, cough-ru/telegram, donateacry, espeak-ng, synth
    group: str
    clip_id: str
    held: bool
    meta: dict[str, str] = dataclasses.field(default_factory=dict)


def _decode_16k(path: Path) -> np.ndarray:
    d = decode_audio(path)
    return resample(to_mono(d.samples), d.sample_rate, SR).astype(np.float32)


def _cached_audio(items: list[CorpusItem], cache: Path, name: str) -> dict[str, np.ndarray]:
    """Decode + resample to 16 kHz once; keyed by the corpus listing (ids and file sizes)."""
    key = corpus_hash(items, content=False)[:16]
    path = cache / f"{name}-{CACHE_VERSION}-{key}.npz"
    if path.is_file():
        with np.load(path) as z:  # read each array once (every z[key] re-reads the file)
            audio, offs, ids = z["audio"], z["offsets"], [str(s) for s in z["ids"]]
        return {i: audio[offs[k] : offs[k + 1]] for k, i in enumerate(ids)}
    _log(f"  decoding {len(items)} {name} files (cached in {path})")
    out = {it.item_id: _decode_16k(it.path) for it in items}
    ids = sorted(out)
    offsets = np.cumsum([0] + [len(out[i]) for i in ids])
    with atomic_write(path) as fh:
        np.savez(fh, audio=np.concatenate([out[i] for i in ids]), offsets=offsets,
                 ids=np.array(ids))
    return out


def real_audio(data: Path, cache: Path, seed: int) -> tuple[list[Clip], list[dict[str, Any]]]:
    clips: list[Clip] = []
    sources: list[dict[str, Any]] = []
    cough = [it for it in load_corpus(data / "cough-ru" / "metadata.csv", "audio",
                                      path_col="rel_path", group_col="content_group")
             if it.meta.get("keep_recommended") == "1"]
    cry = load_corpus(data / "donateacry" / "metadata.csv", "audio", path_col="rel_path",
                      group_col="app_instance_id")
    for name, items, cls, licence, split_col in (
        ("cough-ru", cough, 0, "CC0-1.0", "content_group"),
        ("donateacry", cry, 1, "ODbL-1.0 (database) / DbCL-1.0 (contents)", "app_instance_id"),
    ):
        train, held = split_by_group(items, 0.2, seed)
        held_ids = {it.item_id for it in held}
        audio = _cached_audio(items, cache, name)
        for it in items:
            src = f"cough-ru/{it.meta.get('source')}" if name == "cough-ru" else name
            clips.append(Clip(audio[it.item_id], cls, src, str(it.group), it.item_id,
                              it.item_id in held_ids, dict(it.meta)))
        sources.append({"name": name, "licence": licence, "files": len(items),
                        "split_by": split_col, "train_files": len(train),
                        "held_out_files": len(held), "sha256_listing+content":
                        corpus_hash(items, content=True),
                        "selection": "keep_recommended=1" if name == "cough-ru" else "all rows"})
    return clips, sources


_EN = ("the a my your our this that every morning evening night day water bread tea house window "
       "door doctor nurse patient child mother father friend city river road garden market school "
       "is was will can should must not very quite rather today tomorrow yesterday please thank you "
       "open close bring take call walk run sit stand speak listen remember forget breathe sleep "
       "quickly slowly again always never often here there under over near far green blue red "
       "warm cold small large old new first last seven twelve twenty hundred o'clock minutes").split()
_RU = ("я ты он она мы они это тот утро вечер ночь день вода хлеб чай дом окно дверь врач "
       "пациент ребёнок мать отец друг город река дорога сад рынок школа был будет можно нужно не "
       "очень сегодня завтра вчера пожалуйста спасибо открыть закрыть принести взять позвонить "
       "идти сидеть стоять говорить слушать помнить дышать спать быстро медленно снова всегда "
       "никогда здесь там зелёный синий красный тёплый холодный семь двенадцать двадцать").split()
_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "ru", "ru", "de", "es", "fr-fr", "it",
           "pt", "pl", "nl", "sv", "cs", "hi", "tr", "el")
_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "croak",
             "klatt", "klatt2", "klatt3", "whisper", "whisperf", "grandpa", "grandma", "max",
             "linda", "steph", "robert", "john", "Andy", "Annie", "Denis", "Hugo", "Michael")


def espeak_version() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise HaiEdgeError("espeak-ng is needed to synthesise the speech class: "
                           "apt-get install -y espeak-ng")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    return out.strip().split(" Data at")[0].strip()


def speech_clips(cache: Path, seed: int, n: int) -> list[Clip]:
    """``n`` espeak-ng utterances of random word strings, varied voice/variant/speed/pitch."""
    folder = cache / f"espeak-{CACHE_VERSION}-seed{seed}-n{n}"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 101])
    exe = shutil.which("espeak-ng") or "espeak-ng"
    clips = []
    for i in range(n):
        voice = _VOICES[rng.integers(len(_VOICES))]
        variant = _VARIANTS[rng.integers(len(_VARIANTS))]
        words = _RU if voice == "ru" else _EN
        text = " ".join(words[j] for j in rng.integers(len(words), size=rng.integers(6, 16)))
        args = ["-v", f"{voice}+{variant}", "-s", str(rng.integers(110, 230)),
                "-p", str(rng.integers(20, 80)), "-a", str(rng.integers(60, 180)),
                "-g", str(rng.integers(0, 8))]
        phone = bool(rng.random() < 0.4)
        wav = folder / f"utt{i:04d}.wav"
        if not wav.is_file():
            subprocess.run([exe, *args, "-w", str(wav), text], check=True, timeout=60,
                           capture_output=True)
        x = _decode_16k(wav)
        if phone:
            x = phone_band(x)
        clips.append(Clip(x, 2, "espeak-ng", f"utt{i}", f"espeak-ng/utt{i:04d}", False,
                          {"voice": f"{voice}+{variant}"}))
    return clips


def phone_band(x: np.ndarray) -> np.ndarray:
    """Narrow-band phone channel: 16 kHz -> 8 kHz -> 16 kHz (nothing left above 4 kHz)."""
    return resample(resample(x, SR, 8000), 8000, SR)[: len(x)].astype(np.float32)


def coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power ~ 1 / f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / SR), 20.0)
    x = np.fft.irfft(spec / f ** (exponent / 2), n)
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


def _synth_other(rng: np.random.Generator, dur: float = 4.0) -> tuple[np.ndarray, str]:
    n = int(dur * SR)
    t = np.arange(n) / SR
    kind = ("white", "pink", "brown", "hum", "chords", "melody", "clicks", "fan", "mix")[
        rng.integers(9)]
    if kind in ("white", "pink", "brown"):
        x = coloured_noise(rng, n, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind])
    elif kind in ("hum", "fan"):
        f0 = (50.0, 60.0)[rng.integers(2)]
        x = sum(rng.uniform(0.05, 1) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6))
                for k in range(1, 12))
        x = x + rng.uniform(0.02, 0.3 if kind == "hum" else 1.0) * coloured_noise(rng, n, 1.0)
    elif kind in ("chords", "melody"):
        x = np.zeros(n)
        n_notes = rng.integers(2, 6) if kind == "chords" else rng.integers(6, 16)
        for _ in range(n_notes):
            start = rng.uniform(0, dur * 0.8)
            length = rng.uniform(0.15, 1.5)
            seg = (t >= start) & (t < start + length)
            tt = t[seg] - start
            env = np.minimum(tt / 0.01, 1.0) * np.exp(-tt * rng.uniform(1, 8))
            for semis in ((0, 4, 7) if kind == "chords" else (0,)):
                f = 440.0 * 2 ** ((rng.integers(-24, 16) + semis) / 12)
                x[seg] += env * sum(rng.uniform(0.1, 1) / h * np.sin(2 * np.pi * f * h * tt)
                                    for h in range(1, 6) if f * h < SR / 2)
    elif kind == "clicks":
        x = np.zeros(n)
        pos = np.sort(rng.integers(0, n - 400, size=rng.integers(4, 60)))
        click = np.exp(-np.arange(400) / rng.uniform(5, 80)) * rng.standard_normal(400)
        for p in pos:
            x[p : p + 400] += click * rng.uniform(0.2, 1)
    else:  # mix: noise bed + tones
        x = coloured_noise(rng, n, rng.uniform(0, 2)) * rng.uniform(0.1, 1)
        x = x + sum(np.sin(2 * np.pi * rng.uniform(100, 4000) * t) * rng.uniform(0.1, 1)
                    for _ in range(rng.integers(1, 4)))
    x = np.asarray(x, dtype=np.float64)
    x *= 10 ** (rng.uniform(-35, -8) / 20) / (np.sqrt(np.mean(x**2)) + 1e-12)
    return x.astype(np.float32), kind


def other_clips(seed: int, n: int) -> list[Clip]:
    rng = np.random.default_rng([seed, 202])
    clips = []
    for i in range(n):
        x, kind = _synth_other(rng)
        if rng.random() < 0.4:
            x = phone_band(x)
        clips.append(Clip(x, 3, "synthetic", f"other{i}", f"synthetic/{kind}{i:04d}", False,
                          {"kind": kind}))
    return clips


def assign_synthetic_split(clips: list[Clip], seed: int) -> None:
    items = [CorpusItem(c.clip_id, Path(c.clip_id), c.group) for c in clips]
    _, held = split_by_group(items, 0.2, seed)
    held_ids = {it.item_id for it in held}
    for c in clips:
        c.held = c.clip_id in held_ids


def window_starts(clip: Clip, spec: AudioFrontendSpec, cap: int) -> list[int]:
    """Window start samples of the front end's own split (quiet windows skipped), evenly capped."""
    try:
        wins = split_windows(clip.audio, spec, clip.clip_id)
    except InputError:
        return []
    starts = [w.index * spec.hop_samples for w in wins]
    if len(starts) > cap:
        starts = [starts[int(round(k))] for k in np.linspace(0, len(starts) - 1, cap)]
    return starts


def crop(audio: np.ndarray, start: int, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    lo, hi = max(start, 0), min(start + n, len(audio))
    if hi > lo:
        out[lo - start : hi - start] = audio[lo:hi]
    return out


def load_rgb(path: Path) -> np.ndarray:
    d = decode_image(path)
    return to_rgb(apply_exif_orientation(d.pixels, d.orientation))
