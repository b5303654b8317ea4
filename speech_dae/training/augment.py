"""Augmentation of dynamic mixing: voices, rooms and noises the training split does not hold.

With ``training.mixing: dynamic`` every training example is a clean segment plus a noise
segment at a drawn SNR (:mod:`speech_dae.training.examples`). ``training.augment``
(:class:`speech_dae.config.AugmentConfig`) gives each augmentation below a probability per
example; all are 0 (off) by default, and validation and fixed mixing are never augmented.
The ideas follow facebookresearch/denoiser's ``augment.py`` (Défossez et al. 2020: Remix,
BandMask, RevEcho) and the DNS Challenge's data synthesis (Reddy et al. 2020); the code is
this module's own.

Speech, in this order (the clean target gets the same change unless said otherwise):

- ``speed``: speed perturbation (Ko et al. 2015, "Audio augmentation for speech
  recognition", Kaldi's ``perturb_speed``): ``n * factor`` samples of the utterance resampled
  with soxr to ``n``, so tempo and pitch change by ``factor`` (uniform over ``speed_range`` on a
  :data:`SPEED_STEP` grid).
- ``reverb``: convolution with a room impulse response of a bank of :data:`RIR_COUNT` shoebox
  rooms (pyroomacoustics, image sources; RT60 uniform over ``reverb_rt60``), built once per
  process and run seed. The input is the fully reverberant speech, the target the speech
  convolved with the early part of the same RIR, direct path + :data:`EARLY_S` (as the DNS
  Challenge 2021 does).
- ``eq``: 2-3 random RBJ biquads (low shelf, peaking, high shelf; gains uniform in
  ``+-eq_gain_db``), see :func:`eq_sos`.
- ``bandlimit``: a low-pass whose stop band starts at a cut-off uniform over ``bandlimit_hz``
  (:func:`speech_dae.degrade.lowpass_sos`); the target is the band-limited speech (restoring bandwidth is not the task).

Noise, in this order: ``babble`` (the noise is 3-7 other training utterances) or else
``synthetic`` (white, pink or brown noise, or 50/60 Hz hum, half of them amplitude-modulated)
replaces the recording; ``remix`` adds a second recording at a level uniform over
``remix_db``; then ``eq`` and ``bandlimit`` with draws of their own.

The SNR keeps its meaning (the power ratio over the clean utterance and the noise recording,
as stage 01 mixes): an augmentation that changes the level of the speech or of the noise
scales the power the SNR refers to by the power ratio of the segment after and before it
(the speed change keeps the level). With reverberation that is the power of the reverberant
speech, which enters the mixture; babble refers to the sum of its talkers' utterance powers,
synthetic noise to its own mean square. Every choice is drawn from the example's own
``numpy.random.Generator`` after the draws of plain dynamic mixing, in a fixed layout
(each augmentation's draws are made whether it applies or not), so an example stays a pure
function of ``(seed, key)``, switching one augmentation on does not change what another
draws, and an example none of whose augmentations apply is exactly the unaugmented one.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
import scipy.signal

from ..audio import resample
from ..config import AUGMENTATIONS, AugmentConfig
from ..degrade import lowpass_sos
from ..errors import ConfigError

__all__ = [
    "Augmenter",
    "Parts",
    "RirBank",
    "EARLY_S",
    "RIR_COUNT",
    "colored_noise",
    "eq_sos",
    "hum",
    "rir_bank",
]

log = logging.getLogger(__name__)

#: Rooms in the bank of impulse responses (built once per process and seed).
RIR_COUNT = 64
#: The target's part of an RIR after the direct path, in seconds (DNS Challenge: 50 ms).
EARLY_S = 0.05
#: EQ band types, in the order :func:`eq_sos` numbers them.
EQ_KINDS = ("lowshelf", "peaking", "highshelf")
#: Synthetic noise kinds: 1/f^a noise with a = 0, 1, 2, and mains hum.
SYNTHETIC_KINDS = ("white", "pink", "brown", "hum")
#: Babble: each talker's level in dB, uniform in [-BABBLE_SPREAD_DB, 0] (relative to its utterance power).
BABBLE_SPREAD_DB = 10.0
#: Samples read beyond both ends of a sped-up speech segment, so the resampler's edges fall outside it.
SPEED_MARGIN = 32
#: Speed factors are drawn on this grid (soxr resamples simple ratios about 3x faster than arbitrary ones).
SPEED_STEP = 0.005

_EQ_BANDS = 3  # the most bands; 2 or 3 are used
# Uniforms every augmented example draws, in this fixed layout (name, count).
_LAYOUT = (
    ("flags", len(AUGMENTATIONS)),
    ("speed", 1),
    ("reverb", 1),
    ("eq", 2 * (1 + 4 * _EQ_BANDS)),  # speech, noise: number of bands, then kind, frequency, gain, Q per band
    ("bandlimit", 2),  # speech, noise cut-off
    ("synthetic", 5),  # kind, modulated?, modulation rate, depth, phase
    ("babble", 1),  # number of talkers
    ("remix", 3),  # recording, start, level
)
_OFFSETS = dict(zip((n for n, _ in _LAYOUT), np.cumsum([0] + [c for _, c in _LAYOUT])[:-1]))
_N_UNIFORMS = sum(c for _, c in _LAYOUT)


def _field(v: np.ndarray, name: str) -> np.ndarray:
    """The columns of ``name`` in the ``(batch, _N_UNIFORMS)`` draws ``v``."""
    start = int(_OFFSETS[name])
    return v[:, start : start + dict(_LAYOUT)[name]]


@dataclass
class Parts:
    """The parts of a batch of dynamic mixtures before they are mixed (what :class:`Augmenter` changes).

    Attributes
    ----------
    speech : np.ndarray [shape=(batch, n)], float
        The speech as it enters the mixture.
    target : np.ndarray [shape=(batch, n)], float
        The clean target (``speech`` itself unless reverberation made it the early part).
    noise : np.ndarray [shape=(batch, n)], float
        The noise before it is scaled to the SNR.
    speech_power, noise_power : np.ndarray [shape=(batch,)], float64
        The powers the SNR refers to: at first the whole utterance's and the whole recording's.
    utterance, start : np.ndarray [shape=(batch,)], int64
        The clean utterance of each example and the first sample of its segment.
    recording : np.ndarray [shape=(batch,)], int64
        The noise recording of each example.
    """

    speech: np.ndarray
    target: np.ndarray
    noise: np.ndarray
    speech_power: np.ndarray
    noise_power: np.ndarray
    utterance: np.ndarray
    start: np.ndarray
    recording: np.ndarray


# --------------------------------------------------------------------------------------------- filters
def eq_sos(kind, freq_hz, gain_db, q, sample_rate: int) -> np.ndarray:
    """Second-order sections of RBJ biquads (R. Bristow-Johnson, "Audio EQ Cookbook").

    Parameters
    ----------
    kind : array_like of int
        Index into :data:`EQ_KINDS`: 0 low shelf, 1 peaking, 2 high shelf.
    freq_hz : array_like of float
        Centre (peaking) or corner (shelves, the half-gain point) frequency in Hz, in (0, sample_rate / 2).
    gain_db : array_like of float
        Gain in dB at ``freq_hz`` (peaking) or on the shelf (0 Hz for the low shelf, the Nyquist
        frequency for the high shelf); the other side of a shelf stays at 0 dB.
    q : array_like of float
        Quality factor of the peaking filter (> 0); the shelves use slope 1 (Q = 1/sqrt(2)).
    sample_rate : int
        In Hz.

    Returns
    -------
    np.ndarray [shape=broadcast shape + (6,)], float64
        ``[b0, b1, b2, 1, a1, a2]`` per filter, for :func:`scipy.signal.sosfilt`.
    """
    kind, f, g, q = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in (kind, freq_hz, gain_db, q)))
    A = 10.0 ** (g / 40.0)
    w0 = 2.0 * np.pi * f / sample_rate
    cos, sin = np.cos(w0), np.sin(w0)
    # peaking
    alpha = sin / (2.0 * q)
    peak = np.stack([1 + alpha * A, -2 * cos, 1 - alpha * A, 1 + alpha / A, -2 * cos, 1 - alpha / A], axis=-1)
    # shelves with slope S = 1: 2 sqrt(A) alpha = sqrt(A) sin(w0) sqrt(2)
    k = np.sqrt(A) * sin * np.sqrt(2.0)
    low = np.stack(
        [
            A * ((A + 1) - (A - 1) * cos + k),
            2 * A * ((A - 1) - (A + 1) * cos),
            A * ((A + 1) - (A - 1) * cos - k),
            (A + 1) + (A - 1) * cos + k,
            -2 * ((A - 1) + (A + 1) * cos),
            (A + 1) + (A - 1) * cos - k,
        ],
        axis=-1,
    )
    high = np.stack(
        [
            A * ((A + 1) + (A - 1) * cos + k),
            -2 * A * ((A - 1) + (A + 1) * cos),
            A * ((A + 1) + (A - 1) * cos - k),
            (A + 1) - (A - 1) * cos + k,
            2 * ((A - 1) - (A + 1) * cos),
            (A + 1) - (A - 1) * cos - k,
        ],
        axis=-1,
    )
    sos = np.where((kind == 0)[..., None], low, np.where((kind == 1)[..., None], peak, high))
    return sos / sos[..., 3:4]


# --------------------------------------------------------------------------------------------- noises
def colored_noise(spectrum: np.ndarray, n: int, exponent, sample_rate: int, *, low_cut_hz: float = 20.0) -> np.ndarray:
    """Gaussian noise with a power spectrum proportional to ``1 / f**exponent``, at unit power.

    Parameters
    ----------
    spectrum : np.ndarray [shape=(batch, n // 2 + 1)], complex
        White complex Gaussian values (e.g. ``rng.standard_normal`` for the real and the imaginary
        parts); the randomness of the result.
    n : int
        Samples of each noise.
    exponent : array_like [shape=(batch,) or scalar], float
        0 white, 1 pink (-3 dB per octave), 2 brown (-6 dB per octave).
    sample_rate : int
        In Hz.
    low_cut_hz : float
        Bins below this frequency (and 0 Hz) are 0, so brown noise does not drift.

    Returns
    -------
    np.ndarray [shape=(batch, n)], float64
        Each row with mean square 1.
    """
    n = int(n)
    f = np.fft.rfftfreq(n, 1.0 / sample_rate)
    keep = (f >= low_cut_hz) & (f > 0)
    values, which = np.unique(np.asarray(exponent, np.float64).reshape(-1), return_inverse=True)
    shape = np.where(keep, np.where(keep, f, 1.0)[None, :] ** (-values[:, None] / 2.0), 0.0)  # one per exponent
    x = scipy.fft.irfft(spectrum * shape[which], n, axis=-1)
    return x / np.sqrt(np.maximum(np.mean(x**2, axis=-1, keepdims=True), 1e-30))


def hum(rng: np.random.Generator, n: int, sample_rate: int, mains_hz: float, *, max_harmonics: int = 20) -> np.ndarray:
    """Mains hum: ``mains_hz`` and its harmonics below 0.45 ``sample_rate``, random amplitudes and phases.

    Harmonic ``k`` has amplitude ``u_k * k**-d`` (``u_k`` uniform in [0.2, 1], one decay ``d``
    uniform in [0.5, 2]), so the fundamental usually dominates, as in recordings near power lines.

    Parameters
    ----------
    rng : numpy.random.Generator
    n : int
        Samples.
    sample_rate : int
        In Hz.
    mains_hz : float
        50 or 60 (a whole number of Hz is computed over one exact period and repeated).
    max_harmonics : int
        At most this many partials (the fundamental included).

    Returns
    -------
    np.ndarray [shape=(n,)], float64
        Mean square 1.
    """
    k = np.arange(1, min(max_harmonics, int(0.45 * sample_rate / mains_hz)) + 1)
    amp = rng.uniform(0.2, 1.0, k.size) * k ** -rng.uniform(0.5, 2.0)
    phase = rng.uniform(0.0, 2.0 * np.pi, k.size)
    f0 = float(mains_hz)
    # an integer f0 repeats exactly every sample_rate / gcd samples (320 for 50 Hz, 800 for 60 Hz at 16 kHz)
    period = int(sample_rate) // math.gcd(int(sample_rate), int(f0)) if f0.is_integer() else int(n)
    t = np.arange(min(period, int(n))) / sample_rate
    x = amp @ np.sin(2.0 * np.pi * f0 * k[:, None] * t[None, :] + phase[:, None])
    x = np.resize(x, int(n))  # repeated
    return x / np.sqrt(max(float(np.mean(x**2)), 1e-30))


# --------------------------------------------------------------------------------------------- rooms
@dataclass(frozen=True)
class RirBank:
    """Room impulse responses, all aligned so that the direct path arrives at sample ``lead``.

    Attributes
    ----------
    full : np.ndarray [shape=(count, length)], float64
        The whole responses (unit energy, zero-padded to the longest), cut where the energy
        left is 40 dB below the total.
    early : np.ndarray [shape=(count, lead + EARLY_S * sample_rate)], float64
        Their first samples: direct path and early reflections (the target's response).
    lead : int
        Samples before the direct path (half pyroomacoustics' fractional-delay filter).
    rt60 : np.ndarray [shape=(count,)], float64
        The RT60 in seconds each room was designed for (Sabine).
    """

    full: np.ndarray
    early: np.ndarray
    lead: int
    rt60: np.ndarray


_BANK_LOCK = threading.Lock()


def _need_pyroomacoustics() -> None:
    try:
        import pyroomacoustics  # noqa: F401
    except ImportError:
        raise ConfigError(
            "training.augment.reverb > 0 needs pyroomacoustics: pip install pyroomacoustics "
            "(or set training.augment.reverb=0)"
        ) from None


@lru_cache(maxsize=4)
def _cached_bank(seed: int, sample_rate: int, count: int, rt60_range: tuple[float, float]) -> RirBank:
    import pyroomacoustics as pra  # optional: only reverberation needs it

    rng = np.random.default_rng([int(seed), 0x52_49_52])  # "RIR"
    c, fdl = float(pra.constants.get("c")), int(pra.constants.get("frac_delay_length"))
    lead = fdl // 2
    full, rt60s = [], []
    log.info("building %d room impulse responses (RT60 %g-%g s) for training.augment.reverb", count, *rt60_range)
    attempts = 0
    while len(full) < count and attempts < 200 * count:
        attempts += 1
        dims = np.array([rng.uniform(3.0, 10.0), rng.uniform(3.0, 8.0), rng.uniform(2.4, 4.0)])
        rt60 = rng.uniform(*rt60_range)
        src, mic = (0.5 + rng.random(3) * (dims - 1.0) for _ in range(2))  # 0.5 m or more from every wall
        try:
            absorption, max_order = pra.inverse_sabine(rt60, dims)
        except ValueError:  # this room cannot have this RT60 (absorption above 1): draw another
            continue
        # image sources up to order 30: the tail beyond is below the 40 dB cut for these RT60s
        room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption), max_order=min(max_order, 30))
        room.add_source(src)
        room.add_microphone(mic)
        room.compute_rir()
        h = np.asarray(room.rir[0][0], np.float64)
        direct = int(round(np.linalg.norm(src - mic) / c * sample_rate)) + lead
        h = h[direct - lead :]
        left = np.cumsum((h**2)[::-1])[::-1]  # energy from each sample on
        quiet = np.flatnonzero(left < 1e-4 * left[0])  # the last 40 dB of the decay
        if quiet.size:
            h = h[: max(int(quiet[0]), lead + 1)]
        full.append(h / np.sqrt(np.sum(h**2)))
        rt60s.append(rt60)
    if len(full) < count:
        raise ConfigError(
            f"training.augment.reverb_rt60={list(rt60_range)}: too few rooms of 3-10 m can have so short a "
            "reverberation time (Sabine); raise the lower end, e.g. to 0.2 s"
        )
    length = max(h.size for h in full)
    padded = np.zeros((count, length))
    for i, h in enumerate(full):
        padded[i, : h.size] = h
    n_early = lead + int(round(EARLY_S * sample_rate))
    early = np.zeros((count, n_early))
    early[:, : min(n_early, length)] = padded[:, :n_early]
    for a in (padded, early):
        a.setflags(write=False)
    return RirBank(padded, early, lead, np.array(rt60s))


def rir_bank(seed: int, sample_rate: int, count: int = RIR_COUNT, rt60_range=(0.2, 0.8)) -> RirBank:
    """The bank of shoebox room impulse responses of a run (built on first use, then cached).

    Rooms 3-10 m x 3-8 m x 2.4-4 m, source and microphone at random places 0.5 m or more from
    the walls, wall absorption from the drawn RT60 by Sabine's formula
    (``pyroomacoustics.inverse_sabine``), image-source method up to order 30 (Allen & Berkley
    1979). A pure function of its arguments; thread-safe.

    Parameters
    ----------
    seed : int
        The run's seed.
    sample_rate : int
        In Hz.
    count : int
        Rooms.
    rt60_range : (float, float)
        Each room's RT60 in seconds is uniform over it.

    Returns
    -------
    RirBank

    Raises
    ------
    ConfigError
        If pyroomacoustics is not installed.
    """
    _need_pyroomacoustics()
    with _BANK_LOCK:
        return _cached_bank(int(seed), int(sample_rate), int(count), tuple(float(v) for v in rt60_range))


# --------------------------------------------------------------------------------------------- the augmenter
def _read(pool, index: int, start: int, length: int) -> np.ndarray:
    """``length`` samples of signal ``index`` of an AudioPool from ``start`` (0 outside it), float64.

    One contiguous slice: cheaper than ``AudioPool.segments`` for a single row.
    """
    offset, size = int(pool.offsets[index]), int(pool.lengths[index])
    out = np.zeros(int(length))
    lo, hi = max(int(start), 0), min(int(start) + int(length), size)
    if hi > lo:
        out[lo - start : hi - start] = pool.data[offset + lo : offset + hi]
    return out


def _power_ratio(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Mean square of each row of ``after`` over that of ``before``; 1 where ``before`` is silent."""
    p0 = np.mean(before**2, axis=1)
    p1 = np.mean(after**2, axis=1)
    return np.where(p0 > 1e-20, p1 / np.maximum(p0, 1e-20), 1.0)


class Augmenter:
    """Applies ``training.augment`` to a batch of dynamic mixtures (see the module docstring).

    Thread-safe: ``tf.data`` threads call one instance in parallel.

    Parameters
    ----------
    cfg : AugmentConfig
    sample_rate : int
        Of the training audio, in Hz.
    seed : int
        The run's seed (the RIR bank is drawn from it).
    rir_count : int
        Rooms in the RIR bank (tests use a few).

    Raises
    ------
    ConfigError
        If a band-limit cut-off is not below ``0.95 * sample_rate / 2``, or reverberation is on
        and pyroomacoustics is missing.
    """

    def __init__(self, cfg: AugmentConfig, sample_rate: int, seed: int, *, rir_count: int = RIR_COUNT):
        self.cfg, self.sample_rate, self.seed, self.rir_count = cfg, int(sample_rate), int(seed), int(rir_count)
        self.p = np.array([getattr(cfg, name) for name in AUGMENTATIONS])
        self._spectra: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()
        nyquist = self.sample_rate / 2
        if cfg.bandlimit > 0 and cfg.bandlimit_hz[1] >= 0.95 * nyquist:
            raise ConfigError(
                f"training.augment.bandlimit_hz={list(cfg.bandlimit_hz)} reaches {cfg.bandlimit_hz[1]:g} Hz, but the "
                f"training audio is sampled at {self.sample_rate} Hz: keep the cut-offs below {0.95 * nyquist:g} Hz"
            )
        if cfg.reverb > 0:
            _need_pyroomacoustics()

    @property
    def bank(self) -> RirBank:
        """This run's RIR bank (built on first use)."""
        return rir_bank(self.seed, self.sample_rate, self.rir_count, self.cfg.reverb_rt60)

    def _rir_spectra(self, bank: RirBank, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``size``-point complex64 spectra of the bank's full and early responses (once per size)."""
        with self._lock:
            if size not in self._spectra:
                self._spectra[size] = tuple(
                    scipy.fft.rfft(h.astype(np.float32), size, axis=-1) for h in (bank.full, bank.early)
                )
            return self._spectra[size]

    def __call__(self, parts: Parts, rngs: list[np.random.Generator], speech_pool, noise_pool) -> Parts:
        """Augment a batch.

        Parameters
        ----------
        parts : Parts
            The unaugmented batch (not modified).
        rngs : list of numpy.random.Generator
            One per example: the example's own generator, after the draws of plain dynamic mixing.
        speech_pool, noise_pool : speech_dae.training.examples.AudioPool
            The clean utterances and the noise recordings ``parts`` was cut from.

        Returns
        -------
        Parts
            ``parts`` itself when no example is augmented, else a new batch of float64 arrays.
        """
        batch, n = parts.speech.shape
        v = np.stack([r.random(_N_UNIFORMS) for r in rngs]) if batch else np.zeros((0, _N_UNIFORMS))
        seeds = [r.integers(0, 2**63, size=2) for r in rngs]  # babble, synthetic: their own child generators
        on = dict(zip(AUGMENTATIONS, (_field(v, "flags") < self.p[None, :]).T))
        if not any(a.any() for a in on.values()):
            return parts
        out = Parts(
            speech=parts.speech.astype(np.float64),
            target=parts.target,
            noise=parts.noise.astype(np.float64),
            speech_power=np.array(parts.speech_power, np.float64),
            noise_power=np.array(parts.noise_power, np.float64),
            utterance=parts.utterance,
            start=parts.start,
            recording=parts.recording,
        )
        filters = self._filters(v, on)
        self._speech(out, v, on, filters[0], speech_pool, n)
        self._noise(out, v, on, filters[1], seeds, speech_pool, noise_pool, n)
        return out

    # ------------------------------------------------------------------ draws of the filters
    def _filters(self, v: np.ndarray, on: dict) -> tuple[dict, dict]:
        """The EQ and low-pass sections of every example that gets one: ``({b: sos}, {b: sos})`` for speech, noise."""
        batch = v.shape[0]
        u = _field(v, "eq").reshape(batch, 2, 1 + 4 * _EQ_BANDS)
        bands = 2 + (u[..., 0] >= 0.5)  # (batch, side): 2 or 3 bands
        kind, uf, ug, uq = np.moveaxis(u[..., 1:].reshape(batch, 2, _EQ_BANDS, 4), -1, 0)
        kind = np.minimum((kind * len(EQ_KINDS)).astype(np.int64), len(EQ_KINDS) - 1)
        top = 0.4 * self.sample_rate
        lo = np.choose(kind, [80.0, 150.0, 1500.0])  # low shelf 80-800 Hz, peaking 150 Hz - 0.4 sr, high shelf
        hi = np.choose(kind, [800.0, top, top])  # 1.5 kHz - 0.4 sr; all log-uniform
        eq = eq_sos(kind, lo * (hi / lo) ** uf, (2.0 * ug - 1.0) * self.cfg.eq_gain_db, 0.5 * 6.0**uq, self.sample_rate)
        lo_hz, hi_hz = self.cfg.bandlimit_hz
        cutoff = np.clip(np.round((lo_hz + (hi_hz - lo_hz) * _field(v, "bandlimit")) / 25.0) * 25.0, lo_hz, hi_hz)
        out: tuple[dict, dict] = ({}, {})
        for b in np.flatnonzero(on["eq"] | on["bandlimit"]):
            for side in (0, 1):
                sections = [eq[b, side, : bands[b, side]]] if on["eq"][b] else []
                if on["bandlimit"][b]:
                    sections.append(lowpass_sos(float(cutoff[b, side]), self.sample_rate))  # 25 Hz grid: cached
                out[side][b] = np.concatenate(sections)
        return out

    # ------------------------------------------------------------------ speech
    def _speech(self, out: Parts, v: np.ndarray, on: dict, filters: dict, pool, n: int) -> None:
        lo, hi = self.cfg.speed_range
        factor = lo + (hi - lo) * _field(v, "speed")[:, 0]
        factor = np.clip(np.round(factor / SPEED_STEP) * SPEED_STEP, lo, hi)  # soxr is 3x faster on a grid
        factor = np.where(on["speed"], factor, 1.0)
        reverb = np.flatnonzero(on["reverb"])
        bank = self.bank if reverb.size else None
        long = {}
        for b in np.flatnonzero(on["speed"] | on["reverb"]):
            pre, post = (bank.full.shape[1] - 1 - bank.lead, bank.lead) if on["reverb"][b] else (0, 0)
            x = self._read_speech(pool, out.utterance[b], out.start[b], -pre, n + post, factor[b])
            out.speech[b] = x[pre : pre + n]
            long[b] = x
        changed = np.flatnonzero(on["reverb"] | on["eq"] | on["bandlimit"])
        dry = out.speech[changed]  # the level reference: after the speed change, before the rest
        target = {}
        if reverb.size:
            rir = (_field(v, "reverb")[reverb, 0] * bank.full.shape[0]).astype(np.int64)
            x = np.stack([long[b] for b in reverb]).astype(np.float32)  # (rows, n + length - 1): overlap-save
            size = scipy.fft.next_fast_len(x.shape[1], real=True)
            X = scipy.fft.rfft(x, size, axis=-1)
            first = bank.full.shape[1] - 1  # the circular convolution is exact from here on
            full, early = self._rir_spectra(bank, size)
            out.speech[reverb] = scipy.fft.irfft(X * full[rir], size, axis=-1)[:, first : first + n]
            target = dict(zip(reverb, scipy.fft.irfft(X * early[rir], size, axis=-1)[:, first : first + n]))
        for b, sos in filters.items():
            if b in target:
                out.speech[b], target[b] = scipy.signal.sosfilt(sos, np.stack([out.speech[b], target[b]]))
            else:
                out.speech[b] = scipy.signal.sosfilt(sos, out.speech[b])
        out.target = out.speech.copy()
        if target:
            out.target[list(target)] = np.stack(list(target.values()))
        out.speech_power[changed] *= _power_ratio(out.speech[changed], dry)

    def _read_speech(self, pool, utterance: int, start: int, first: int, stop: int, factor: float) -> np.ndarray:
        """Samples ``first .. stop - 1`` of the segment at ``start`` of ``utterance``, sped up by ``factor``.

        Output sample ``t`` is the utterance at ``start + factor * t`` (soxr, through
        :func:`speech_dae.audio.resample`), read with :data:`SPEED_MARGIN` samples more at each end.
        """
        length = stop - first
        if factor == 1.0:
            return _read(pool, utterance, start + first, length)
        m = SPEED_MARGIN
        base = int(np.floor(start + factor * first)) - m
        x = _read(pool, utterance, base, int(np.ceil(factor * length)) + 2 * m)
        y = resample(x, self.sample_rate * factor, self.sample_rate).astype(np.float64)
        j0 = int(round((start + factor * first - base) / factor))
        y = y[j0 : j0 + length]
        return np.pad(y, (0, length - y.size)) if y.size < length else y

    # ------------------------------------------------------------------ noise
    def _noise(self, out: Parts, v, on, filters: dict, seeds, speech_pool, noise_pool, n: int) -> None:
        cfg, sr = self.cfg, self.sample_rate
        babble = on["babble"] & (len(speech_pool) >= 2)
        lo, hi = cfg.babble_talkers
        talkers = lo + np.minimum((_field(v, "babble")[:, 0] * (hi - lo + 1)).astype(np.int64), hi - lo)
        for b in np.flatnonzero(babble):
            rng = np.random.default_rng(seeds[b][0])
            k = int(min(talkers[b], len(speech_pool) - 1))
            pick = rng.choice(len(speech_pool) - 1, size=k, replace=False)
            pick = pick + (pick >= out.utterance[b])  # skip the example's own utterance
            start = (rng.random(k) * np.maximum(speech_pool.lengths[pick] - n, 1)).astype(np.int64)
            level = 10.0 ** (-BABBLE_SPREAD_DB * rng.random(k) / 20.0)  # amplitude, at unit utterance power
            gain = level / np.sqrt(np.maximum(speech_pool.power[pick], 1e-20))
            out.noise[b] = sum(g * _read(speech_pool, j, s, n) for g, j, s in zip(gain, pick, start))
            out.noise_power[b] = float(np.sum(level**2))
        rows = np.flatnonzero(on["synthetic"] & ~babble)
        if rows.size:
            u = _field(v, "synthetic")[rows]
            kind = np.minimum((u[:, 0] * len(SYNTHETIC_KINDS)).astype(np.int64), len(SYNTHETIC_KINDS) - 1)
            rngs = [np.random.default_rng(seeds[b][1]) for b in rows]
            colored = np.flatnonzero(kind < 3)
            if colored.size:
                m = scipy.fft.next_fast_len(n, real=True)
                spectra = np.stack(
                    [rngs[i].standard_normal(m // 2 + 1) + 1j * rngs[i].standard_normal(m // 2 + 1) for i in colored]
                )
                out.noise[rows[colored]] = colored_noise(spectra, m, kind[colored], sr)[:, :n]
            for i in np.flatnonzero(kind == 3):
                out.noise[rows[i]] = hum(rngs[i], n, sr, 50.0 if rngs[i].random() < 0.5 else 60.0)
            am = np.flatnonzero(u[:, 1] < 0.5)
            if am.size:  # amplitude modulation: rate log-uniform 0.5-8 Hz, depth 0.3-1, random phase
                rate, depth, phase = 0.5 * 16.0 ** u[am, 2], 0.3 + 0.7 * u[am, 3], u[am, 4]
                t = np.arange(n) / sr
                out.noise[rows[am]] *= 1.0 + depth[:, None] * np.sin(2 * np.pi * (rate[:, None] * t + phase[:, None]))
            out.noise_power[rows] = np.mean(out.noise[rows] ** 2, axis=1)
        rows = np.flatnonzero(on["remix"]) if len(noise_pool) >= 2 else np.zeros(0, np.int64)
        if rows.size:
            u = _field(v, "remix")[rows]
            other = np.minimum((u[:, 0] * (len(noise_pool) - 1)).astype(np.int64), len(noise_pool) - 2)
            other = other + (other >= out.recording[rows])  # another recording
            piece = noise_pool.segments(other, (u[:, 1] * noise_pool.lengths[other]).astype(np.int64), n, wrap=True)
            lo, hi = cfg.remix_db
            rel = 10.0 ** ((lo + (hi - lo) * u[:, 2]) / 10.0)  # power of the second noise relative to the first
            scale = np.sqrt(rel * out.noise_power[rows] / np.maximum(noise_pool.power[other], 1e-20))
            out.noise[rows] += scale[:, None] * piece
            out.noise_power[rows] *= 1.0 + rel
        if filters:
            rows = np.fromiter(filters, np.int64, len(filters))
            before = out.noise[rows]
            for b, sos in filters.items():
                out.noise[b] = scipy.signal.sosfilt(sos, out.noise[b])
            out.noise_power[rows] *= _power_ratio(out.noise[rows], before)
