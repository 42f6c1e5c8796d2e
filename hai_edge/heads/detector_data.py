"""Real recordings for the cough detector: coughs against real speech, breathing, vowels, cry.

A detector trained on coughs against synthetic (espeak) speech learns "synthetic speech is not a
cough" and flags recorded voices at confidence 0.9+ (issue #17). This module lists the clips of
``../shared/data`` the detector is trained and measured on, by sound type, with a split that no
person straddles:

* ``coswara``: coughs, counting (speech), breathing and sustained vowels of the *same* people on
  the same browser microphones (so the device cannot be the cue); ``keep_recommended`` only;
  split by ``participant_id`` (held out: ``COSWARA_HOLDOUT`` of the participants).
* ``fsdd``: 8 kHz spoken digits, 5 speakers; split by speaker (2 held out).
* ``cough-ru``: coughs, 8 kHz call-centre and 48 kHz app audio; ``keep_recommended`` only;
  split by ``content_group`` exactly as the reference teacher and the ``audio-s`` student were,
  so no held-out recording was seen by the embedding the head sits on.
* ``donateacry``: infant cry, 8 kHz; split by ``app_instance_id`` as the teacher was.
* generated noise and UI-like sounds (coloured noise, hum, beeps, clicks), split by index.

**Channels.** 8 kHz audio is speech (fsdd), cry and call-centre coughs, wideband audio is coswara
and app coughs: a head could learn "band-limited = X". So half of the coswara clips (every sound
type, chosen by a hash of the clip id) and a third of the app coughs and noise are passed
through 8 kHz (:data:`Channel.PHONE_8K`), which gives both classes both channels.

Every clip is analysed alone in a quiet noise bed (:func:`clip_scene`): 1 s of bed, the clip at
a peak level of -26..-10 dBFS, 0.5 s of bed; the seed is the clip id, so training and
evaluation see the same audio for a clip.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hai_edge.corpus import load_corpus, split_by_group
from hai_edge.errors import HaiEdgeError

__all__ = ["COSWARA_HOLDOUT", "Channel", "DetectorClip", "SoundType", "clip_scene",
           "detector_clips", "load_clip", "scene_clips", "stable_unit"]

SR = 16000
COSWARA_HOLDOUT = 0.35  # coswara is new to the student: hold out more people, for tighter CIs
FSDD_HELD_SPEAKERS = 2
TEACHER_HOLDOUT = 0.2  # the reference teacher's and student's split of cough-ru and donateacry


class SoundType(str, enum.Enum):
    """What a clip holds; everything but ``COUGH`` must be rejected."""

    COUGH = "cough"
    SPEECH = "speech"
    BREATHING = "breathing"
    VOWEL = "vowel"
    CRY = "cry"
    NOISE = "noise"


class Channel(str, enum.Enum):
    NATIVE = "native"  # as recorded (resampled to 16 kHz)
    PHONE_8K = "8k"  # through 8 kHz first, like a phone line


@dataclasses.dataclass(frozen=True)
class DetectorClip:
    """One clip of the detector corpus (``path`` is None for generated noise)."""

    item_id: str
    path: Path | None
    sound: SoundType
    source: str
    group: str
    held_out: bool
    channel: Channel = Channel.NATIVE

    @property
    def band_limited(self) -> bool:
        """Whether the clip reaches the detector with at most 4 kHz of bandwidth."""
        return self.channel is Channel.PHONE_8K or self.source in (
            "fsdd", "donateacry", "cough-ru/call-center")


def stable_unit(key: str) -> float:
    """A stable number in [0, 1) from a string (channel choice, fsdd speaker order)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0**64


def _channel(item_id: str, p_8k: float) -> Channel:
    return Channel.PHONE_8K if stable_unit(f"channel:{item_id}") < p_8k else Channel.NATIVE


def _csv(data: Path, name: str, group_col: str) -> list:
    meta = data / name / "metadata.csv"
    if not meta.is_file():
        raise HaiEdgeError(f"{meta} not found (--data should point at ../shared/data)")
    return load_corpus(meta, "audio", path_col="rel_path", group_col=group_col)


def detector_clips(data: Path, *, n_noise: int = 240, seed: int = 0) -> list[DetectorClip]:
    """Every clip of the detector corpus with its sound type, group and split (module doc)."""
    data = Path(data)
    out: list[DetectorClip] = []
    cos = [it for it in _csv(data, "coswara", "participant_id")
           if it.meta.get("keep_recommended") == "1"]
    _, held = split_by_group(cos, COSWARA_HOLDOUT, seed)
    held_ids = {it.item_id for it in held}
    kinds = {"cough": SoundType.COUGH, "speech": SoundType.SPEECH,
             "breathing": SoundType.BREATHING, "vowel": SoundType.VOWEL}
    for it in cos:
        out.append(DetectorClip(f"coswara/{it.item_id}", it.path, kinds[it.meta["sound_type"]],
                                "coswara", f"coswara:{it.group}", it.item_id in held_ids,
                                _channel(it.item_id, 0.5)))
    fsdd = _csv(data, "fsdd", "speaker_id")
    speakers = sorted({str(it.group) for it in fsdd}, key=lambda s: stable_unit(f"fsdd:{seed}:{s}"))
    held_spk = set(speakers[:FSDD_HELD_SPEAKERS])
    out += [DetectorClip(f"fsdd/{it.item_id}", it.path, SoundType.SPEECH, "fsdd",
                         f"fsdd:{it.group}", str(it.group) in held_spk) for it in fsdd]
    ru = [it for it in _csv(data, "cough-ru", "content_group")
          if it.meta.get("keep_recommended") == "1"]
    _, held = split_by_group(ru, TEACHER_HOLDOUT, 0)
    held_ids = {it.item_id for it in held}
    for it in ru:
        src = f"cough-ru/{it.meta.get('source')}"
        out.append(DetectorClip(f"cough-ru/{it.item_id}", it.path, SoundType.COUGH, src,
                                f"cough-ru:{it.group}", it.item_id in held_ids,
                                _channel(it.item_id, 1 / 3) if src == "cough-ru/telegram"
                                else Channel.NATIVE))
    cry = _csv(data, "donateacry", "app_instance_id")
    _, held = split_by_group(cry, TEACHER_HOLDOUT, 0)
    held_ids = {it.item_id for it in held}
    out += [DetectorClip(f"donateacry/{it.item_id}", it.path, SoundType.CRY, "donateacry",
                         f"donateacry:{it.group}", it.item_id in held_ids) for it in cry]
    for i in range(n_noise):
        cid = f"noise/{seed}-{i:04d}"
        out.append(DetectorClip(cid, None, SoundType.NOISE, "generated", cid, i % 10 < 3,
                                _channel(cid, 1 / 3)))
    return out


def _phone(x: np.ndarray) -> np.ndarray:
    from hai_edge.runtime.frontends import resample

    return resample(resample(x, SR, 8000), 8000, SR)[: x.size].astype(np.float32)


def _noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / SR), 20.0)
    x = np.fft.irfft(spec / f ** (exponent / 2), n)
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


def _generated(item_id: str) -> np.ndarray:
    """A 4 s non-cough sound: coloured noise with level steps, mains hum, UI beeps or clicks."""
    rng = np.random.default_rng(int(stable_unit(item_id) * 2**62))
    n = 4 * SR
    t = np.arange(n) / SR
    kind = int(rng.integers(4))
    if kind == 0:  # noise that switches on/off (a fan, a tap)
        x = _noise(rng, n, float(rng.uniform(0, 2)))
        x *= np.repeat(rng.uniform(0.1, 1.0, 8), n // 8)
    elif kind == 1:  # mains hum with harmonics over pink noise
        f0 = (50.0, 60.0)[int(rng.integers(2))]
        x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 10))
        x = x + rng.uniform(0.05, 0.5) * _noise(rng, n, 1.0)
    elif kind == 2:  # UI beeps: short tones with 5 ms ramps
        x = np.zeros(n)
        for _ in range(int(rng.integers(2, 8))):
            s, d = int(rng.integers(0, n - SR // 2)), int(rng.uniform(0.05, 0.4) * SR)
            ramp = np.minimum(1.0, np.minimum(np.arange(d), np.arange(d)[::-1]) / (0.005 * SR))
            x[s : s + d] += ramp * np.sin(2 * np.pi * rng.uniform(400, 3000) * t[:d])
    else:  # clicks and taps
        x = np.zeros(n)
        click = np.exp(-np.arange(400) / rng.uniform(5, 60)) * rng.standard_normal(400)
        for p in rng.integers(0, n - 400, size=int(rng.integers(3, 30))):
            x[p : p + 400] += click * rng.uniform(0.2, 1)
    return np.asarray(x, dtype=np.float32)


def load_clip(clip: DetectorClip) -> np.ndarray:
    """The clip as mono float32 at 16 kHz, through its channel."""
    if clip.path is None:
        x = _generated(clip.item_id)
    else:
        from hai_edge.runtime.decoders import decode_audio
        from hai_edge.runtime.frontends import resample, to_mono

        d = decode_audio(clip.path)
        x = resample(to_mono(d.samples), d.sample_rate, SR).astype(np.float32)
    return _phone(x) if clip.channel is Channel.PHONE_8K else x


def clip_scene(clip: DetectorClip, x: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    """(audio, start_s, end_s): the clip alone in a quiet bed (module docstring)."""
    x = load_clip(clip) if x is None else x
    rng = np.random.default_rng(int(stable_unit(f"bed:{clip.item_id}") * 2**62))
    hop = SR // 100
    frames = x[: max(hop, x.size // hop * hop)]
    frames = np.pad(frames, (0, max(0, hop - frames.size))).reshape(-1, hop).astype(np.float64)
    peak = max(float(np.max(np.mean(frames**2, axis=1))), 1e-12)
    level = rng.uniform(-26.0, -10.0)
    x = x * np.float32(10 ** (level / 20) / math.sqrt(peak))
    lead, tail = SR, SR // 2
    bed = _noise(rng, lead + x.size + tail, float(rng.integers(3)))
    audio = bed * np.float32(10 ** (rng.uniform(-70.0, -55.0) / 20))
    audio[lead : lead + x.size] += x
    return np.clip(audio, -1, 1).astype(np.float32), lead / SR, (lead + x.size) / SR


def scene_clips(clips: Sequence[DetectorClip]) -> tuple[list, dict[str, DetectorClip]]:
    """``cough_scenes.SceneClip`` views of ``clips`` (path = the clip id) and the id lookup,
    so ``make_scenes(..., load=lambda p: load_clip(lookup[str(p)]))`` builds scenes."""
    from hai_edge.heads.cough_scenes import SceneClip

    lookup = {c.item_id: c for c in clips}
    return [SceneClip(c.item_id, Path(c.item_id), c.sound.value, c.source, c.group)
            for c in clips], lookup
