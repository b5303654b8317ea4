"""Configuration: frozen dataclasses loaded from YAML, with ``--set`` overrides.

Defaults live in one place, ``configs/default.yaml``. A user file given with
``--config`` is merged over it, then every ``--set section.key=value`` is
applied (values are parsed as YAML, so ``--set mixing.snr_db=[0,5]`` works),
then the result is validated. Unknown keys and bad values raise
:class:`~speech_dae.errors.ConfigError` naming the key and the valid choices.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "Config",
    "AudioConfig",
    "MixingConfig",
    "FeatureConfig",
    "DatasetConfig",
    "ModelConfig",
    "TrainingConfig",
    "AugmentConfig",
    "AUGMENTATIONS",
    "ReconstructConfig",
    "load_config",
    "parse_override",
    "FEATURE_TYPES",
    "SPECTRAL_FEATURES",
    "STFT_FEATURES",
    "EXECUTION_KEYS",
]

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"

#: Feature types whose frames are spectra (the per-frame models work on these).
SPECTRAL_FEATURES = ("fbank", "logmag", "logmel", "power", "magnitude")
#: Every ``features.type``.
FEATURE_TYPES = (*SPECTRAL_FEATURES, "waveform")
#: Features whose mask is a gain on the STFT bins (what the spectral losses apply).
STFT_FEATURES = ("logmag", "power", "magnitude")
#: ``training`` keys that say how to run, not what to train: left out of the run fingerprint.
EXECUTION_KEYS = ("distribute", "cpu_devices")
#: Training targets: predict the clean features, or a bounded gain applied to the noisy features.
TARGETS = ("mapping", "mask")
#: ``training.distribute``: one device, ``tf.distribute.MirroredStrategy`` (local devices),
#: ``MultiWorkerMirroredStrategy`` (cluster from TF_CONFIG).
DISTRIBUTE = ("none", "mirrored", "multiworker")
#: ``training.mixing``: the stage-02 mixtures, or new clean x noise x SNR x gain draws every epoch.
MIXING = ("fixed", "dynamic")
#: ``training.augment`` probabilities (dynamic mixing): speech augmentations, then noise ones (the order they apply in).
AUGMENTATIONS = ("speed", "reverb", "eq", "bandlimit", "synthetic", "babble", "remix")
#: ``training.loss`` terms: pointwise on the model output (alone), or spectral ones that can be combined with "+".
POINTWISE_LOSSES = ("mse", "mae")
SPECTRAL_LOSSES = ("cmse", "sisdr", "ccmse", "mrstft")
#: ``training.lr_schedule``: the learning rate over the training budget (see
#: :func:`speech_dae.training.callbacks.lr_factor`).
LR_SCHEDULES = ("constant", "cosine", "onecycle")
#: Rising share of the budget of ``training.lr_schedule: onecycle`` when ``training.warmup`` is null
#: (``pct_start`` of Smith & Topin 2019, as ``torch.optim.lr_scheduler.OneCycleLR``).
ONECYCLE_WARMUP = 0.3


def check_loss_weights(weights, n_terms: int, terms) -> tuple:
    try:
        values = tuple(float(w) for w in weights)
    except (TypeError, ValueError):
        raise ConfigError(
            f"loss weights must be a list of numbers, got {weights!r}; "
            f"give one non-negative weight per term of {list(terms)}."
        ) from None
    if len(values) != n_terms:
        raise ConfigError(
            f"got {len(values)} loss weights {list(values)} for {n_terms} terms {list(terms)}; "
            "give exactly one weight per term (or none for all 1.0)."
        )
    bad = [w for w in values if not math.isfinite(w) or w < 0]
    if bad:
        raise ConfigError(f"loss weights must be finite and >= 0, got {list(values)} for terms {list(terms)}.")
    if n_terms and not any(values):
        raise ConfigError(f"all loss weights are 0 ({list(values)}); at least one term must have a positive weight.")
    return values


def parse_loss(spec: str, weights: Sequence[float] | None = None) -> tuple:
    """Parse a loss spec string of the config into term names and weights.

    Parameters
    ----------
    spec : str
        ``"mse"``, ``"mae"`` (point-wise, alone) or one or more spectral
        terms of :data:`SPECTRAL_LOSSES` (``cmse``, ``sisdr``, ``ccmse``,
        ``mrstft``) joined by ``+``, e.g. ``"cmse+sisdr"``. Case and blanks around names are ignored.
    weights : sequence of float, optional
        One finite, non-negative weight per term, in the order of ``spec``;
        default all ``1.0``. At least one must be positive.

    Returns
    -------
    terms : tuple of str
        The term names, lower-case, e.g. ``("cmse", "sisdr")``.
    weights : tuple of float
        One weight per term.

    Raises
    ------
    ConfigError
        For an empty spec, an unknown or duplicated name, a point-wise loss
        combined with anything, or weights of the wrong count, negative,
        non-finite or all zero.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(
            f"loss must be a non-empty string such as 'mse' or 'cmse+sisdr', got {spec!r}; "
            f"valid names: {list(POINTWISE_LOSSES + SPECTRAL_LOSSES)}."
        )
    terms = tuple(part.strip().lower() for part in spec.split("+"))
    valid = POINTWISE_LOSSES + SPECTRAL_LOSSES
    for term in terms:
        if term not in valid:
            raise ConfigError(
                f"unknown loss term {term!r} in {spec!r}; valid: "
                f"{', '.join(repr(v) for v in valid)} (spectral terms join with '+', e.g. 'cmse+sisdr')."
            )
    dupes = sorted({t for t in terms if terms.count(t) > 1})
    if dupes:
        raise ConfigError(
            f"loss term(s) {dupes} repeated in {spec!r}; name each term once and use weights to scale it."
        )
    pointwise = [t for t in terms if t in POINTWISE_LOSSES]
    if pointwise and len(terms) > 1:
        spectral = [t for t in terms if t in SPECTRAL_LOSSES]
        if spectral:
            raise ConfigError(
                f"{pointwise[0]} cannot be combined with the spectral terms {list(SPECTRAL_LOSSES)}: use cmse "
                f"(compressed-magnitude MSE) with sisdr instead of {spec!r}."
            )
        raise ConfigError(
            f"point-wise losses {pointwise} cannot be combined ({spec!r}); pick one of {list(POINTWISE_LOSSES)}."
        )
    if weights is None:
        weights = (1.0,) * len(terms)
    return terms, check_loss_weights(weights, len(terms), terms)


def is_spectral(spec: str) -> bool:
    """Whether a loss spec needs :class:`SpectralLoss` (and the 4-channel STFT target).

    Parameters
    ----------
    spec : str
        A spec accepted by :func:`parse_loss`.

    Returns
    -------
    bool
        ``True`` for specs of spectral terms (``"cmse"``, ``"sisdr"``,
        ``"ccmse"``, ``"mrstft"`` and their sums such as ``"cmse+sisdr"``),
        ``False`` for ``"mse"``/``"mae"``.

    Raises
    ------
    ConfigError
        If ``spec`` is invalid (see :func:`parse_loss`).
    """
    terms, _ = parse_loss(spec)
    return terms[0] in SPECTRAL_LOSSES


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _ints(section: str, obj, *names: str) -> None:
    """Whole-number fields must be ints (not floats, not bools)."""
    for name in names:
        v = getattr(obj, name)
        _check(isinstance(v, int) and not isinstance(v, bool), f"{section}.{name}={v!r} must be a whole number")


@dataclass(frozen=True)
class AudioConfig:
    sample_rate: int
    min_duration_s: float
    silence_rms_db: float
    noise_channel: int | None = 0

    def __post_init__(self):
        _ints("audio", self, "sample_rate")
        _check(
            8000 <= self.sample_rate <= 48000,
            f"audio.sample_rate={self.sample_rate} Hz is outside 8000..48000; set a usual speech rate such as 16000",
        )
        _check(self.min_duration_s > 0, f"audio.min_duration_s={self.min_duration_s} must be > 0 seconds")
        _check(
            self.noise_channel is None
            or (
                isinstance(self.noise_channel, int)
                and not isinstance(self.noise_channel, bool)
                and self.noise_channel >= 0
            ),
            f"audio.noise_channel={self.noise_channel!r} must be a 0-based channel number (0 = the first) or null "
            "(average the channels)",
        )


@dataclass(frozen=True)
class MixingConfig:
    snr_db: tuple
    clip_peak: float
    val_fraction: float
    test_fraction: float
    share_noise: bool = False

    def __post_init__(self):
        snrs = self.snr_db if isinstance(self.snr_db, (list, tuple)) else (self.snr_db,)
        _check(len(snrs) > 0, "mixing.snr_db is empty; give at least one SNR in dB, e.g. --snr 0 5")
        for s in snrs:
            _check(
                isinstance(s, (int, float)) and -40 <= s <= 60,
                f"mixing.snr_db value {s!r} is not a number in -40..60 dB",
            )
        object.__setattr__(self, "snr_db", tuple(float(s) for s in snrs))
        _check(0 < self.clip_peak <= 1.0, f"mixing.clip_peak={self.clip_peak} must be in (0, 1]")
        _check(isinstance(self.share_noise, bool), f"mixing.share_noise={self.share_noise!r} must be true or false")
        for key in ("val_fraction", "test_fraction"):
            v = getattr(self, key)
            _check(0 <= v < 0.9, f"mixing.{key}={v} must be in [0, 0.9)")
        _check(
            self.val_fraction + self.test_fraction < 0.95,
            f"mixing.val_fraction + mixing.test_fraction = {self.val_fraction + self.test_fraction:g} leaves "
            "(almost) nothing for training; keep the sum below 0.95",
        )


@dataclass(frozen=True)
class FeatureConfig:
    type: str
    n_fft: int
    hop_length: int
    win_length: int
    window: str
    eps: float
    n_mels: int
    fbank_win_length: int
    fmin: float
    fmax: float | None
    preemphasis: float
    chunk_size: int = 2048

    def __post_init__(self):
        _ints("features", self, "n_fft", "hop_length", "win_length", "n_mels", "fbank_win_length", "chunk_size")
        _check(
            self.chunk_size >= 16 and self.chunk_size % 2 == 0,
            f"features.chunk_size={self.chunk_size} must be an even number of samples >= 16",
        )
        _check(
            self.type in FEATURE_TYPES,
            f"features.type={self.type!r} is unknown; choose one of {', '.join(FEATURE_TYPES)}",
        )
        _check(
            self.n_fft >= 16 and self.n_fft & (self.n_fft - 1) == 0,
            f"features.n_fft={self.n_fft} must be a power of two >= 16",
        )
        _check(
            0 < self.hop_length <= self.win_length <= self.n_fft,
            f"need 0 < hop_length ({self.hop_length}) <= win_length ({self.win_length}) <= n_fft ({self.n_fft})",
        )
        _check(
            0 < self.fbank_win_length <= self.n_fft,
            f"features.fbank_win_length={self.fbank_win_length} must be in 1..n_fft ({self.n_fft})",
        )
        _check(
            self.type != "fbank" or self.hop_length <= self.fbank_win_length,
            f"features.hop_length={self.hop_length} must not exceed fbank_win_length={self.fbank_win_length} "
            "for fbank features",
        )
        _check(self.eps > 0, f"features.eps={self.eps} must be > 0")
        _check(1 <= self.n_mels <= self.n_fft // 2 + 1, f"features.n_mels={self.n_mels} must be in 1..n_fft/2+1")
        _check(0 <= self.preemphasis < 1, f"features.preemphasis={self.preemphasis} must be in [0, 1)")


@dataclass(frozen=True)
class DatasetConfig:
    context: int
    stride: int
    normalise: str

    def __post_init__(self):
        _ints("dataset", self, "context", "stride")
        _check(
            self.normalise in ("shared", "separate", "none"),
            f"dataset.normalise={self.normalise!r} is unknown; choose shared, separate or none",
        )
        _check(1 <= self.context <= 4096, f"dataset.context={self.context} frames must be in 1..4096")
        _check(1 <= self.stride, f"dataset.stride={self.stride} must be >= 1 frame")


@dataclass(frozen=True)
class ModelConfig:
    name: str
    hparams: Mapping[str, Mapping[str, Any]]

    def params_for(self, name: str | None = None) -> dict:
        """Hyper-parameters of model ``name`` (default: the configured one)."""
        return dict(self.hparams.get(name or self.name) or {})


def _pair(v, *, ints: bool = False) -> bool:
    """Whether ``v`` is a ``[low, high]`` pair of numbers (whole numbers with ``ints``) with low <= high."""
    return (
        isinstance(v, (list, tuple))
        and len(v) == 2
        and all(_number(x) and (not ints or isinstance(x, int)) for x in v)
        and v[0] <= v[1]
    )


@dataclass(frozen=True)
class AugmentConfig:
    """``training.augment``: per-example augmentations of dynamic mixing, all off (probability 0) by default.

    Each of :data:`AUGMENTATIONS` is the probability that an example gets it; the other keys are
    the ranges its parameters are drawn from (:mod:`speech_dae.training.augment` applies them).
    """

    speed: float = 0.0
    speed_range: tuple[float, float] = (0.9, 1.1)
    reverb: float = 0.0
    reverb_rt60: tuple[float, float] = (0.2, 0.8)
    eq: float = 0.0
    eq_gain_db: float = 6.0
    bandlimit: float = 0.0
    bandlimit_hz: tuple[float, float] = (3500.0, 7500.0)
    synthetic: float = 0.0
    babble: float = 0.0
    babble_talkers: tuple[int, int] = (3, 7)
    remix: float = 0.0
    remix_db: tuple[float, float] = (-10.0, 0.0)

    @property
    def active(self) -> bool:
        """Whether any augmentation has a probability above 0."""
        return any(getattr(self, name) > 0 for name in AUGMENTATIONS)

    def __post_init__(self):
        for name in AUGMENTATIONS:
            p = getattr(self, name)
            _check(
                _number(p) and 0 <= p <= 1,
                f"training.augment.{name}={p!r} is a probability per example: give a number in [0, 1] (0 = off)",
            )
            object.__setattr__(self, name, float(p))
        ranges = {
            "speed_range": (0.5, 2.0, "speed factors, e.g. [0.9, 1.1]"),
            "reverb_rt60": (0.05, 2.0, "reverberation times in seconds, e.g. [0.2, 0.8]"),
            "bandlimit_hz": (500.0, 48000.0, "low-pass cut-offs in Hz, e.g. [3500, 7500]"),
            "remix_db": (-40.0, 20.0, "levels in dB of the second noise relative to the first, e.g. [-10, 0]"),
        }
        for name, (lo, hi, what) in ranges.items():
            v = getattr(self, name)
            _check(
                _pair(v) and lo <= v[0] and v[1] <= hi,
                f"training.augment.{name}={v!r} must be [low, high] with {lo:g} <= low <= high <= {hi:g} ({what})",
            )
            object.__setattr__(self, name, (float(v[0]), float(v[1])))
        v = self.babble_talkers
        _check(
            _pair(v, ints=True) and 1 <= v[0] and v[1] <= 16,
            f"training.augment.babble_talkers={v!r} must be [low, high] whole numbers of talkers with "
            "1 <= low <= high <= 16, e.g. [3, 7]",
        )
        object.__setattr__(self, "babble_talkers", (int(v[0]), int(v[1])))
        _check(
            _number(self.eq_gain_db) and 0 < self.eq_gain_db <= 24,
            f"training.augment.eq_gain_db={self.eq_gain_db!r} must be in (0, 24] dB (each EQ band's gain is "
            "uniform in +-eq_gain_db)",
        )
        object.__setattr__(self, "eq_gain_db", float(self.eq_gain_db))


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int
    batch_size: int
    learning_rate: float
    patience: int
    loss: str
    target: str = "mapping"
    steps_per_epoch: int | None = None
    val_max_patches: int | None = None
    max_minutes: float | None = None
    noise_only_fraction: float = 0.25
    distribute: str = "none"
    cpu_devices: int | None = None
    tensorboard_media: bool = True
    tensorboard_utterances: int = 2
    mixing: str = "fixed"
    snr_range: tuple[float, float] = (-5.0, 15.0)
    gain_db: float = 10.0
    loss_weights: tuple[float, ...] | None = None
    weight_decay: float = 0.0
    augment: AugmentConfig = AugmentConfig()
    lr_schedule: str = "constant"
    warmup: float | None = None
    lr_min: float = 0.0
    ema: float = 0.0

    @property
    def warmup_fraction(self) -> float:
        """The warm-up share of the budget in effect: ``warmup``, or when null 0 (constant, cosine) or
        :data:`ONECYCLE_WARMUP` (onecycle)."""
        if self.warmup is not None:
            return float(self.warmup)
        return ONECYCLE_WARMUP if self.lr_schedule == "onecycle" else 0.0

    def __post_init__(self):
        _check(self.mixing in MIXING, f"training.mixing={self.mixing!r} is unknown; choose {' or '.join(MIXING)}")
        lo_hi = self.snr_range
        _check(
            isinstance(lo_hi, (list, tuple))
            and len(lo_hi) == 2
            and all(_number(v) for v in lo_hi)
            and lo_hi[0] <= lo_hi[1],
            f"training.snr_range={lo_hi!r} must be [low, high] in dB with low <= high, e.g. [-5, 15]",
        )
        object.__setattr__(self, "snr_range", tuple(float(v) for v in lo_hi))
        _check(
            _number(self.gain_db) and 0 <= self.gain_db <= 40,
            f"training.gain_db={self.gain_db!r} must be a "
            "level range in dB in [0, 40] (each dynamic mixture is scaled by a gain uniform in +-gain_db)",
        )
        _check(
            _number(self.weight_decay) and 0 <= self.weight_decay < 1,
            f"training.weight_decay={self.weight_decay!r} must be in [0, 1) (0: Adam; > 0: AdamW)",
        )
        augment = self.augment
        if isinstance(augment, Mapping):
            known = {f.name for f in dataclasses.fields(AugmentConfig)}
            unknown = sorted(set(augment) - known)
            _check(
                not unknown,
                f"unknown key(s) {', '.join(unknown)} in training.augment; valid keys: {', '.join(sorted(known))}",
            )
            augment = AugmentConfig(**augment)
        _check(
            isinstance(augment, AugmentConfig),
            f"training.augment={augment!r} must be a mapping such as {{speed: 0.5, eq: 0.3}} "
            "(see configs/default.yaml)",
        )
        object.__setattr__(self, "augment", augment)
        _check(
            self.lr_schedule in LR_SCHEDULES,
            f"training.lr_schedule={self.lr_schedule!r} is unknown; choose {', '.join(LR_SCHEDULES)}",
        )
        _check(
            self.warmup is None or (_number(self.warmup) and 0 <= self.warmup < 1),
            f"training.warmup={self.warmup!r} must be a share of the training budget in [0, 1), e.g. 0.05 "
            f"(or null: 0 for constant and cosine, {ONECYCLE_WARMUP} for onecycle)",
        )
        _check(
            _number(self.lr_min) and 0 <= self.lr_min <= 1,
            f"training.lr_min={self.lr_min!r} must be the final learning rate as a share of "
            "training.learning_rate, in [0, 1] (e.g. 0.0 or 0.01)",
        )
        _check(
            _number(self.ema) and 0 <= self.ema < 1,
            f"training.ema={self.ema!r} must be 0 (no weight averaging) or an EMA momentum in (0, 1), e.g. 0.999",
        )
        try:
            terms = parse_loss(self.loss, self.loss_weights)
        except ConfigError as err:
            raise ConfigError(
                f"training.loss={self.loss!r}, training.loss_weights={self.loss_weights!r}: {err}"
            ) from None
        object.__setattr__(self, "loss_weights", None if self.loss_weights is None else terms[1])
        _check(
            isinstance(self.tensorboard_media, bool),
            f"training.tensorboard_media={self.tensorboard_media!r} must be true or false",
        )
        n_utt = self.tensorboard_utterances
        _check(
            isinstance(n_utt, int) and not isinstance(n_utt, bool) and 1 <= n_utt <= 8,
            f"training.tensorboard_utterances={n_utt!r} must be a whole number in 1..8",
        )
        _check(
            self.distribute in DISTRIBUTE,
            f"training.distribute={self.distribute!r} is unknown; choose {', '.join(DISTRIBUTE)}",
        )
        n = self.cpu_devices
        _check(
            n is None or (isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 64),
            f"training.cpu_devices={n!r} must be a whole number in 1..64 (or null: TensorFlow's default)",
        )
        _check(
            0 < self.noise_only_fraction < 1,
            f"training.noise_only_fraction={self.noise_only_fraction!r} must be a share in (0, 1), e.g. 0.25",
        )
        for name in ("steps_per_epoch", "val_max_patches"):
            v = getattr(self, name)
            _check(
                v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1),
                f"training.{name}={v!r} must be a whole number >= 1 (or null for no limit)",
            )
        _check(
            self.max_minutes is None or (isinstance(self.max_minutes, (int, float)) and self.max_minutes > 0),
            f"training.max_minutes={self.max_minutes!r} must be > 0 (or null for no time budget)",
        )
        _check(self.target in TARGETS, f"training.target={self.target!r} is unknown; choose {' or '.join(TARGETS)}")
        _ints("training", self, "epochs", "batch_size", "patience")
        _check(self.epochs >= 1, f"training.epochs={self.epochs} must be >= 1")
        _check(self.batch_size >= 1, f"training.batch_size={self.batch_size} must be >= 1")
        _check(0 < self.learning_rate < 1, f"training.learning_rate={self.learning_rate} must be in (0, 1)")
        _check(self.patience >= 0, f"training.patience={self.patience} must be >= 0")


@dataclass(frozen=True)
class ReconstructConfig:
    patch_hop: int
    batch_size: int
    image_max_s: float
    max_gain: float | None
    atten_lim_db: float | None = None
    inference: str = "auto"

    def __post_init__(self):
        _ints("reconstruct", self, "patch_hop", "batch_size")
        _check(
            self.inference in ("auto", "sequence", "patch"),
            f"reconstruct.inference={self.inference!r} must be auto, sequence or patch",
        )
        _check(
            self.atten_lim_db is None or (_number(self.atten_lim_db) and self.atten_lim_db >= 0),
            f"reconstruct.atten_lim_db={self.atten_lim_db!r} must be >= 0 dB (or null for no limit)",
        )
        _check(
            self.max_gain is None or self.max_gain > 0,
            f"reconstruct.max_gain={self.max_gain} must be > 0 (or null for no bound)",
        )
        _check(self.patch_hop >= 1, f"reconstruct.patch_hop={self.patch_hop} must be >= 1")
        _check(self.batch_size >= 1, f"reconstruct.batch_size={self.batch_size} must be >= 1")


@dataclass(frozen=True)
class Config:
    seed: int
    audio: AudioConfig
    mixing: MixingConfig
    features: FeatureConfig
    dataset: DatasetConfig
    model: ModelConfig
    training: TrainingConfig
    reconstruct: ReconstructConfig

    def to_dict(self) -> dict:
        """Plain, JSON-serialisable dict of every value (tuples become lists)."""
        return _jsonable(dataclasses.asdict(self))

    def replace(self, **overrides: Any) -> Config:
        """A copy with dotted-key overrides applied, e.g. ``replace(**{"features.type": "fbank"})``."""
        data = self.to_dict()
        for key, value in overrides.items():
            _set_dotted(data, key, value)
        return config_from_dict(data)


_SECTIONS = {
    "audio": AudioConfig,
    "mixing": MixingConfig,
    "features": FeatureConfig,
    "dataset": DatasetConfig,
    "model": ModelConfig,
    "training": TrainingConfig,
    "reconstruct": ReconstructConfig,
}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _merge(base: dict, other: Mapping, where: str = "") -> dict:
    """Recursive merge of ``other`` into a copy of ``base``; unknown keys are errors."""
    out = copy.deepcopy(base)
    for key, value in other.items():
        path = f"{where}{key}"
        if key not in out and not where.startswith("model.hparams"):
            raise ConfigError(f"unknown config key {path!r}; valid keys here: {', '.join(sorted(out))}")
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value, f"{path}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def _set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(
                f"unknown config key {'.'.join(parts[: i + 1])!r} in --set {key}=...; "
                f"valid keys here: {', '.join(sorted(node)) if isinstance(node, dict) else '(none)'}"
            )
        node = node[part]
    leaf = parts[-1]
    if not isinstance(node, dict):
        raise ConfigError(f"--set {key}: {'.'.join(parts[:-1])!r} is not a section")
    if leaf not in node and not key.startswith("model.hparams."):
        raise ConfigError(f"unknown config key {key!r}; valid keys here: {', '.join(sorted(node))}")
    node[leaf] = value


def parse_override(text: str) -> tuple[str, Any]:
    """Split a ``key=value`` override; the value is parsed as YAML.

    Raises
    ------
    ConfigError
        If ``text`` has no ``=`` or the value is not valid YAML.
    """
    if "=" not in text:
        raise ConfigError(f"--set {text!r} is not of the form section.key=value (e.g. --set training.epochs=5)")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({exc.__class__.__name__})") from None
    if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            value = float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "infinity") else value
        except ValueError:
            pass
    return key.strip(), value


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """Build and validate a :class:`Config` from a complete nested dict.

    Raises
    ------
    ConfigError
        On a missing or unknown key, or an invalid value.
    """
    kwargs: dict[str, Any] = {"seed": data.get("seed")}
    if not isinstance(kwargs["seed"], int):
        raise ConfigError(f"seed={kwargs['seed']!r} must be an integer")
    for name, cls in _SECTIONS.items():
        section = data.get(name)
        if not isinstance(section, Mapping):
            raise ConfigError(f"config section {name!r} is missing or not a mapping")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(section) - fields
        missing = fields - set(section)
        if unknown:
            raise ConfigError(
                f"unknown key(s) {', '.join(sorted(unknown))} in section {name!r}; "
                f"valid keys: {', '.join(sorted(fields))}"
            )
        if missing:
            raise ConfigError(f"missing key(s) {', '.join(sorted(missing))} in section {name!r}")
        try:
            kwargs[name] = cls(**section)
        except TypeError as exc:  # e.g. a comparison between str and int in validation
            raise ConfigError(f"section {name!r} has a value of the wrong type: {exc}") from None
    f, sr = kwargs["features"], kwargs["audio"].sample_rate
    fmax = sr / 2 if f.fmax is None else f.fmax
    _check(
        0 <= f.fmin < fmax <= sr / 2,
        f"need 0 <= features.fmin ({f.fmin}) < features.fmax ({f.fmax}) <= sample_rate / 2 ({sr / 2:g} Hz)",
    )
    return Config(**kwargs)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Load ``configs/default.yaml``, merge ``path`` over it, apply ``overrides``.

    Parameters
    ----------
    path : str or Path, optional
        A YAML file with any subset of the default keys.
    overrides : sequence of str
        ``section.key=value`` strings, applied in order (values parsed as YAML).

    Returns
    -------
    Config
        The validated, frozen configuration.

    Raises
    ------
    ConfigError
        If a file is missing or not valid YAML, a key is unknown, or a value is invalid.
    """
    data = _read_yaml(DEFAULT_CONFIG_PATH)
    if path is not None:
        user = _read_yaml(Path(path))
        data = _merge(data, user)
    for item in overrides:
        key, value = parse_override(item)
        _set_dotted(data, key, value)
    return config_from_dict(data)


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist; pass an existing YAML file to --config")
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections, not {type(data).__name__}")
    return data
