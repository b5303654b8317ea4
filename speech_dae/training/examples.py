"""Training examples cut from audio: dynamic mixing and the targets of the spectral losses.

Stage 03 normally reads the memory-mapped patches of stage 02 (the fixed
mixtures of stage 01). With ``training.mixing: dynamic``, or with a spectral
loss (``cmse`` / ``sisdr``, which need the complex STFT of the clean speech and
of the mixture), it cuts its examples from the stage-01 audio of the dataset's
splits instead:

- **dynamic** (training split only): every example draws a clean utterance
  segment, a noise segment, an SNR uniform over ``training.snr_range`` (power
  ratio over the whole clean utterance, as stage 01 mixes) and an overall level
  uniform over ``+-training.gain_db``, then mixes them. The clean utterances
  are the stage-01 references of the split (one per clean file); the noise is
  ``mixture - reference`` of each training mixture, i.e. the pieces of the
  training noise recordings stage 01 used. Nothing of the validation or test
  split is read. Each epoch draws new combinations (Wisdom et al. 2020,
  "Unsupervised sound separation using mixture invariant training", and
  Zeghidour & Grangier 2021 call this dynamic mixing; it is standard in
  speech enhancement recipes such as Asteroid's and SpeechBrain's).
  ``training.augment`` (all off by default) changes the speech and the noise
  of each draw further: speed, reverberation, EQ, band limit, synthetic or
  babble noise, a second noise (:mod:`speech_dae.training.augment`).
- **fixed**: segments of the stage-01 mixtures and their references (the
  same material as the stage-02 patches), at random positions.
- **validation** (always fixed): the validation mixtures cut into consecutive,
  non-overlapping patches, the same every epoch.

An example is a pure function of ``(seed, key)``: ``numpy.random.default_rng([seed, key])``
draws it, so batches can be built in parallel ``tf.data`` threads, split over
replicas, and a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..artifacts import read_csv
from ..audio import read_mono
from ..config import STFT_FEATURES, FeatureConfig, TrainingConfig, is_spectral
from ..errors import ArtifactError, ConfigError
from ..features import FeatureExtractor
from ..folders import referenced_pairs
from ..framing import Normaliser, even_indices
from ..mixing import peak_gain
from .augment import Augmenter, Parts
from .batches import Batches

__all__ = ["AudioPool", "MixtureBatches", "load_pools", "mixture_sequences", "uses_audio"]

log = logging.getLogger(__name__)


def uses_audio(t: TrainingConfig) -> bool:
    """Whether stage 03 trains on examples cut from audio (this module) instead of the stage-02 patches."""
    return t.mixing == "dynamic" or is_spectral(t.loss)


class AudioPool:
    """Signals of one kind in one float32 array, with cheap vectorised segment reads.

    Parameters
    ----------
    signals : list of np.ndarray [shape=(n_samples,)], float32
        Mono waveforms (at least one, each non-empty).
    """

    def __init__(self, signals: list[np.ndarray]):
        lengths = np.array([s.size for s in signals], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self.lengths = lengths
        self.data = np.concatenate([np.asarray(s, np.float32) for s in signals])
        self.power = np.array([float(np.mean(np.square(s, dtype=np.float64))) for s in signals])

    def __len__(self) -> int:
        return int(self.lengths.size)

    def segments(self, index: np.ndarray, start: np.ndarray, n: int, *, wrap: bool = False) -> np.ndarray:
        """``n`` samples of signal ``index[b]`` from sample ``start[b]``, for every ``b``.

        Parameters
        ----------
        index, start : np.ndarray [shape=(batch,)], int
            Signal and first sample (may be negative, or run past the end).
        n : int
        wrap : bool
            Read past the end from the beginning (noise loops); otherwise samples outside
            the signal are 0 (speech is zero-padded, as the STFT pads a whole file).

        Returns
        -------
        np.ndarray [shape=(batch, n)], float32
        """
        index, start = np.asarray(index, np.int64), np.asarray(start, np.int64)
        pos = start[:, None] + np.arange(int(n))[None, :]
        length = self.lengths[index][:, None]
        if wrap:
            return self.data[self.offsets[index][:, None] + pos % length]
        inside = (pos >= 0) & (pos < length)
        return np.where(inside, self.data[self.offsets[index][:, None] + np.clip(pos, 0, length - 1)], 0.0).astype(
            np.float32
        )


def load_pools(dataset: Path, info: dict, split: str, *, dynamic: bool) -> dict[str, AudioPool]:
    """The audio of ``split`` for :class:`MixtureBatches`, from the stage-01 folder the dataset was built from.

    Returns ``{"noisy": ..., "clean": ...}`` (pairs of mixture and reference, the fixed examples),
    or with ``dynamic`` ``{"clean": ..., "noise": ...}`` (one reference per clean file, and
    ``mixture - reference`` of every mixture).

    Raises
    ------
    ArtifactError
        If the stage-01 folder (``mixtures/``, ``references/``) is gone, or the split has no
        utterance with a clean reference.
    """
    source = Path(info.get("source", ""))
    pairs = referenced_pairs(dataset, info, split)
    if not pairs:
        raise ArtifactError(
            f"{dataset} has no {split} utterance with a clean reference; dynamic mixing and the "
            "spectral losses need clean speech (stage 01 with --clean)"
        )
    files = [(mix, ref) for _, mix, ref in pairs]
    missing = [str(p) for pair in files for p in pair if not p.is_file()]
    if missing:
        raise ArtifactError(
            f"{len(missing)} stage-01 audio files are missing (e.g. {missing[0]}); training on "
            f"audio reads {source}: re-run 01_extract_features.py into it"
        )
    log.info("reading %d %s mixtures and references from %s", len(files), split, source)
    noisy, clean = [read_mono(m) for m, _ in files], [read_mono(r) for _, r in files]
    if not dynamic:
        return {"noisy": AudioPool(noisy), "clean": AudioPool(clean)}
    manifest = {r["id"]: r for r in read_csv(source / "manifest.csv")} if (source / "manifest.csv").is_file() else {}
    first: dict[str, int] = {}
    for i, (uid, _, _) in enumerate(pairs):
        first.setdefault(manifest.get(uid, {}).get("clean_file") or uid, i)
    noise = [n - c for n, c in zip(noisy, clean)]
    noise = [v for v in noise if np.mean(np.square(v, dtype=np.float64)) > 1e-12]  # a reference-only pair: no noise
    if not noise:
        raise ArtifactError(f"the {split} mixtures of {source} hold no noise (mixture == reference)")
    return {"clean": AudioPool([clean[i] for i in first.values()]), "noise": AudioPool(noise)}


class MixtureBatches:
    """Batches of ``(normalised noisy patch, target)`` cut from audio (see the module docstring).

    Implements the batch plan of :class:`speech_dae.training.batches.Batches` (``batch_starts``,
    ``gather``, ``structure``, ``steps``, ``dataset``), so stage 03 streams it through the
    same ``tf.data`` pipeline. Mixed into that class by :func:`mixture_sequences`.

    Targets: ``mapping`` the normalised clean features; ``mask`` the ratio mask of
    :meth:`FeatureExtractor.mask_target`; with a spectral loss the packed STFTs
    (:func:`speech_dae.losses.pack_stft_target`): float32 ``(batch, context, n_bins, 4)``,
    clean real / imag, noisy real / imag.
    """

    def _setup(
        self,
        pools: dict[str, AudioPool],
        fx: FeatureExtractor,
        norm: Normaliser,
        *,
        context: int,
        t: TrainingConfig,
        spectral: bool,
        table: np.ndarray | None,
        clip_peak: float,
    ):
        self.audio, self.fx, self.norm, self.context = pools, fx, norm, int(context)
        self.dynamic = "noise" in pools
        self.target, self.spectral = t.target, spectral
        self.snr_range, self.gain_db, self.clip_peak = t.snr_range, t.gain_db, float(clip_peak)
        self.pad = _pad_frames(fx)
        self.n_samples = (self.context - 1 + 2 * self.pad) * fx.cfg.hop_length + 1
        self.table = table  # validation: (pair, first sample) of every patch
        # training.augment: dynamic training examples only (never validation or fixed mixing)
        active = self.dynamic and table is None and t.augment.active
        self.augmenter = Augmenter(t.augment, fx.sample_rate, self.seed) if active else None

    # ------------------------------------------------------------------ draws
    def _draw(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Noisy and clean (target) segments ``(batch, n_samples)`` float32 of the examples ``keys``.

        Dynamic examples go through ``self.augmenter`` (``training.augment``) when one is on.
        """
        n = self.n_samples
        if self.table is not None:
            pair, start = self.table[keys, 0], self.table[keys, 1]
            return self.audio["noisy"].segments(pair, start, n), self.audio["clean"].segments(pair, start, n)
        rngs = [np.random.default_rng([self.seed, int(k)]) for k in keys]
        u = np.stack([r.random(6) for r in rngs])
        if not self.dynamic:
            pool = self.audio["noisy"]
            pair = (u[:, 0] * len(pool)).astype(np.int64)
            start = (u[:, 1] * np.maximum(pool.lengths[pair] - n, 1)).astype(np.int64)
            return pool.segments(pair, start, n), self.audio["clean"].segments(pair, start, n)
        speech, noise = self.audio["clean"], self.audio["noise"]
        ci, ni = (u[:, 0] * len(speech)).astype(np.int64), (u[:, 2] * len(noise)).astype(np.int64)
        cs = (u[:, 1] * np.maximum(speech.lengths[ci] - n, 1)).astype(np.int64)
        clean = speech.segments(ci, cs, n)
        piece = noise.segments(ni, (u[:, 3] * noise.lengths[ni]).astype(np.int64), n, wrap=True)
        parts = Parts(clean, clean, piece, speech.power[ci], noise.power[ni], ci, cs, ni)
        if self.augmenter is not None:  # further draws of the same generators, after the six above
            parts = self.augmenter(parts, rngs, speech, noise)
        lo, hi = self.snr_range
        snr_db = lo + (hi - lo) * u[:, 4]
        scale = np.sqrt(parts.speech_power / (parts.noise_power * 10.0 ** (snr_db / 10.0)))
        gain = 10.0 ** ((2.0 * u[:, 5] - 1.0) * self.gain_db / 20.0)
        noisy = parts.speech + scale[:, None] * parts.noise
        gain = gain * peak_gain(np.max(np.abs(noisy), axis=1) * gain, self.clip_peak)
        return (noisy * gain[:, None]).astype(np.float32), (parts.target * gain[:, None]).astype(np.float32)

    def _features(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Features ``(batch, context, n_bins)`` of the interior frames, and their STFT (STFT types)."""
        keep = slice(self.pad, self.pad + self.context)
        if self.fx.kind == "fbank":
            return np.stack([self.fx(s)[keep] for s in y]), None
        S = self.fx.stft(y)[:, keep]
        return self.fx.from_stft(S), S

    def examples(self, keys: np.ndarray) -> list[np.ndarray]:
        """``[x, y]`` of the examples ``keys`` (see the class docstring for ``y``)."""
        noisy, clean = self._draw(np.asarray(keys, np.int64))
        (xf, xs), (yf, ys) = self._features(noisy), self._features(clean)
        if self.spectral:
            from ..losses import pack_stft_target

            target = pack_stft_target(ys, xs)
        elif self.target == "mask":
            target = self.fx.mask_target(xf, yf)
        else:
            target = self.norm.norm_y(yf)
        return [np.asarray(self.norm.norm_x(xf), np.float32), np.asarray(target, np.float32)]


def _pad_frames(fx: FeatureExtractor) -> int:
    """Frames at each end of a segment whose analysis window reaches outside it (cut off)."""
    c = fx.cfg
    return int(np.ceil(max(c.n_fft, c.win_length, c.fbank_win_length) / 2 / c.hop_length))


def _validation_table(pools: dict[str, AudioPool], context: int, hop: int, pad: int) -> np.ndarray:
    """``(n_patches, 2)`` int64: pair and first segment sample of consecutive non-overlapping patches."""
    rows = []
    for pair, n in enumerate(pools["noisy"].lengths):
        n_frames = 1 + int(n) // hop
        first = np.arange(n_frames // context) * context  # first frame of each whole patch
        rows.append(np.stack([np.full(first.size, pair), (first - pad) * hop], axis=1))
    return np.concatenate(rows).astype(np.int64)


def mixture_sequences(dataset: Path, info: dict, t: TrainingConfig, seed: int):
    """Train and validation batch plans cut from audio, and their sizes.

    Parameters
    ----------
    dataset : Path
        The stage-02 folder (its splits, ``norm.npz``, its stage-01 source).
    info : dict
        Its ``dataset.json``.
    t : TrainingConfig
    seed : int

    Returns
    -------
    train, val : batch plans
        :class:`MixtureBatches` on :class:`speech_dae.training.batches.Batches` (``steps()``, ``dataset()``).
    sizes : dict
        ``train`` / ``val`` examples per epoch, and ``val_frames`` / ``val_minutes``.

    Raises
    ------
    ConfigError
        For waveform features, or a spectral loss without ``training.target: mask`` on an
        STFT feature (logmag, power, magnitude) with ``win_length == n_fft``.
    ArtifactError
        See :func:`load_pools`.
    """
    params = info["features_params"]
    feature = info["feature"]
    if feature == "waveform":
        raise ConfigError("dynamic mixing and the spectral losses work on spectral features, not waveform chunks")
    spectral = is_spectral(t.loss)
    fcfg = FeatureConfig(**params["features"])
    if spectral and (feature not in STFT_FEATURES or t.target != "mask" or fcfg.win_length != fcfg.n_fft):
        raise ConfigError(
            f"training.loss={t.loss} applies the model's mask to the noisy STFT: it needs "
            f"training.target=mask and {', '.join(STFT_FEATURES)} features with win_length == n_fft "
            f"(got target {t.target}, feature {feature}, win_length {fcfg.win_length}, n_fft "
            f"{fcfg.n_fft})"
        )
    fx = FeatureExtractor(fcfg, int(params["sample_rate"]))
    norm = Normaliser.load(dataset / "norm.npz")
    context = int(info["context"])
    clip_peak = float(params["mixing"]["clip_peak"])  # the guard the stage-01 mixtures were made with

    class Plan(MixtureBatches, Batches):
        def __init__(self, pools, keys, *, shuffle, batch_size, table, max_batches=None):
            Batches.__init__(self, [keys], batch_size=batch_size, shuffle=shuffle, seed=seed, max_batches=max_batches)
            self._setup(pools, fx, norm, context=context, t=t, spectral=spectral, table=table, clip_peak=clip_peak)

        def n_full_batches(self):
            return int(np.ceil(self.pools[0].size / self.batch_size))

        def batch_size_of(self, i):
            return int(min(self.batch_size, self.pools[0].size - i * self.batch_size))

        def batch_starts(self, epoch, i):
            keys = self.pools[0][i * self.batch_size : (i + 1) * self.batch_size]
            return (keys + epoch * self.pools[0].size if self.shuffle else keys), None

        def gather(self, keys, labels):
            return self.examples(keys)

        def structure(self, xb, yb, zeros):
            return xb, yb

    train_pools = load_pools(dataset, info, "train", dynamic=t.mixing == "dynamic")
    val_pools = load_pools(dataset, info, "val", dynamic=False)
    hop = fcfg.hop_length
    n_train = int(info["splits"]["train"]["frames"]) // context
    if t.steps_per_epoch:
        n_train = min(n_train, t.steps_per_epoch * t.batch_size)
    train = Plan(
        train_pools, np.arange(max(n_train, 1), dtype=np.int64), shuffle=True, batch_size=t.batch_size, table=None
    )
    table = _validation_table(val_pools, context, hop, _pad_frames(fx))
    if t.val_max_patches and table.shape[0] > t.val_max_patches:
        table = table[even_indices(table.shape[0], t.val_max_patches)]
    if table.shape[0] == 0:
        raise ArtifactError(
            f"{dataset}: no validation utterance is {context} frames long; rebuild it with "
            "mixing.val_fraction > 0 or a smaller dataset.context"
        )
    val = Plan(
        val_pools,
        np.arange(table.shape[0], dtype=np.int64),
        shuffle=False,
        batch_size=max(t.batch_size, 512),
        table=table,
    )
    val_frames = int(table.shape[0]) * context
    sizes = {
        "train": int(train.pools[0].size),
        "val": int(table.shape[0]),
        "val_frames": val_frames,
        "val_minutes": round(val_frames * hop / int(params["sample_rate"]) / 60.0, 2),
    }
    return train, val, sizes
