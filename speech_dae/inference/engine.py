"""The inference engine: one loader of a run folder, and the path from a noisy waveform to a denoised one.

:class:`Denoiser` reads ``models/<run>/`` (``run.json`` as a
:class:`~speech_dae.runinfo.RunInfo`, ``norm.npz``, and ``model.keras`` or an
export), and denoises a whole waveform in one batched pass: features ->
normalised ``context``-frame patches every ``patch_hop`` frames -> the network
-> overlap average -> un-normalisation or mask -> inverse features (phase
borrowing for STFT features, mel-domain gain for fbank; see
:mod:`speech_dae.features`). Stage 04, stage 05, ``speech-dae denoise``,
export, streaming and the TensorBoard callback all denoise through it.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from ..artifacts import STAGE03, require_files
from ..config import FeatureConfig
from ..errors import ArtifactError, ConfigError
from ..features import FeatureExtractor
from ..framing import Normaliser, gather_patches, overlap_average, patch_starts
from ..runinfo import RunInfo
from .runtimes import FORMATS, load_runtime

__all__ = ["Denoiser", "ENGINES", "PRETRAINED", "attenuation_floor"]


def attenuation_floor(atten_lim_db: float | None) -> float | None:
    """The gain floor ``10 ** (-atten_lim_db / 20)`` of an attenuation limit in dB (None: no limit).

    Raises
    ------
    ConfigError
        For a negative or non-finite limit.
    """
    if atten_lim_db is None:
        return None
    try:
        lim = float(atten_lim_db)
    except (TypeError, ValueError):
        raise ConfigError(f"atten_lim_db must be a number of dB, got {atten_lim_db!r}") from None
    if not (np.isfinite(lim) and lim >= 0):
        raise ConfigError(f"atten_lim_db={atten_lim_db} must be >= 0 dB (e.g. 12: keep noise at most 12 dB down)")
    return float(10.0 ** (-lim / 20.0))


#: The pretrained default run shipped in the package (``configs/best.yaml`` trained on the corpus of
#: ``build_corpus.sh``; ``speech_dae/pretrained/CREDITS.md``): what ``Denoiser()`` and ``speech-dae denoise``
#: without ``--model`` use.
PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"

#: What runs the network: Keras on ``model.keras``, or an export of ``speech-dae export``.
ENGINES = ("keras", "onnx", "tflite")


class Denoiser:
    """A trained run, ready to denoise waveforms.

    Parameters
    ----------
    run_dir : str or Path, optional
        ``models/<run>/`` written by stage 03. Default: the pretrained model shipped in the package
        (:data:`PRETRAINED`: ``configs/best.yaml`` trained on the corpus, 16 kHz; its training data and
        licences in ``speech_dae/pretrained/CREDITS.md``).
    patch_hop : int or None
        Frames between inference patches (1 = a patch at every frame). None
        (default): the hop the run was validated with (``run.json``
        ``patch_hop``), so that every inference path gives the audio that was
        scored. Waveform runs always use chunks every ``chunk_size // 2`` samples.
    batch_size : int
        Patches per forward pass.
    max_gain : float or None
        Bound on the per-bin magnitude gain over the noisy STFT (see
        :meth:`FeatureExtractor.to_audio`).
    atten_lim_db : float >= 0 or None
        Strength control: no bin is attenuated by more than this many dB (the gain over the
        noisy STFT is floored at ``10 ** (-atten_lim_db / 20)``, DeepFilterNet's attenuation
        limit; waveform runs mix that share of the noisy input back in). None (default): no limit.
    engine : {"keras", "onnx", "tflite"}
        Runs ``model.keras`` with Keras, or ``model.onnx`` / ``model.tflite``
        (``speech-dae export``) with onnxruntime (without importing TensorFlow
        or Keras) / the TFLite interpreter.

    Attributes
    ----------
    info : RunInfo
        The run's ``run.json``.
    sample_rate : int
        Hz.
    fx : FeatureExtractor
        Forward features and their inverse, with the run's framing.
    context, patch_hop : int
        Frames per patch and frames between patches (samples for waveform runs).

    Raises
    ------
    ArtifactError
        If the run folder is missing or incomplete (names stage 03), its ``run.json`` is
        not of this version (:meth:`RunInfo.load`), or ``model.onnx`` / ``model.tflite``
        is missing for ``engine="onnx"`` / ``"tflite"`` (names ``speech-dae export``).
    ConfigError
        For an unknown ``engine``.
    """

    def __init__(
        self,
        run_dir: str | Path | None = None,
        *,
        patch_hop: int | None = None,
        batch_size: int = 1024,
        max_gain: float | None = 1.0,
        engine: str = "keras",
        atten_lim_db: float | None = None,
    ):
        """See the class docstring. ``self.model`` is the Keras model, or for the exported engines a
        runtime of :mod:`speech_dae.inference.runtimes` called the same way (``model(x, training=False)``);
        ``self.load_seconds`` is the engine's start-up time (imports and model load)."""
        t_start = time.perf_counter()
        if engine not in ENGINES:
            raise ConfigError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self.engine = engine
        needed = ["model.keras"] if engine == "keras" else []
        run_dir = PRETRAINED if run_dir is None else run_dir
        run_dir = require_files(run_dir, needed + ["run.json", "norm.npz"], stage_hint=STAGE03)
        self.run_dir = Path(run_dir)
        self.info = RunInfo.load(self.run_dir)
        self.norm = Normaliser.load(self.run_dir / "norm.npz")
        self._configure(patch_hop=patch_hop, batch_size=batch_size, max_gain=max_gain, atten_lim_db=atten_lim_db)
        if engine != "keras":
            path = self.run_dir / FORMATS[engine]
            if not path.exists():
                raise ArtifactError(
                    f"{path} is missing; run `speech-dae export --model {self.run_dir} --format {engine}` first "
                    "(or use --engine keras)"
                )
            # onnx: onnxruntime only, no TensorFlow, no Keras
            self.model = load_runtime(path, engine, input_shape=(self.context, self.fx.n_bins))
        else:
            import keras

            from .. import models  # noqa: F401  (registers the custom activation mrelu for load_model)

            try:
                self.model = keras.saving.load_model(self.run_dir / "model.keras")
            except (ValueError, OSError) as exc:
                raise ArtifactError(
                    f"{self.run_dir}/model.keras cannot be loaded ({exc}); re-run {STAGE03} --force"
                ) from None
        self.load_seconds = time.perf_counter() - t_start

    def _configure(
        self, *, patch_hop: int | None, batch_size: int, max_gain: float | None, atten_lim_db: float | None = None
    ) -> None:
        """Framing, target and patching from ``self.info`` (``patch_hop`` None: the run's own)."""
        patch_hop = self.info.patch_hop if patch_hop is None else patch_hop
        if isinstance(patch_hop, bool) or not isinstance(patch_hop, (int, np.integer)) or patch_hop < 1:
            raise ConfigError(f"patch_hop={patch_hop!r} must be a whole number of frames >= 1 (e.g. --patch-hop 4)")
        self.sample_rate = int(self.info.sample_rate)
        self.fx = FeatureExtractor(FeatureConfig(**self.info.features), self.sample_rate)
        self.context = int(self.info.context)
        self.target = self.info.target
        self.waveform = self.info.waveform
        if self.waveform:  # Hann-weighted overlap-add of chunks every chunk_size // 2 samples
            self.patch_hop = self.context // 2
            self.window = np.hanning(self.context + 2)[1:-1].astype(np.float32)  # strictly positive weights
        else:
            self.patch_hop = min(int(patch_hop), self.context)  # a larger hop would leave frames uncovered
            self.window = None
        self.batch_size = int(batch_size)
        self.max_gain = max_gain
        self.atten_lim_db, self.min_gain = atten_lim_db, attenuation_floor(atten_lim_db)

    @classmethod
    def from_model(
        cls,
        model,
        info: RunInfo,
        norm: Normaliser,
        *,
        patch_hop: int | None = None,
        batch_size: int = 1024,
        max_gain: float | None = 1.0,
        atten_lim_db: float | None = None,
    ) -> Denoiser:
        """A Denoiser around an in-memory Keras model, e.g. during training (no run folder yet).

        Parameters
        ----------
        model : keras.Model
            Called directly (``model(x, training=False)``), which also works inside a distribution strategy.
        info : RunInfo
            At least ``model``, ``feature``, ``sample_rate``, ``features``, ``context``, ``n_bins`` and ``target``.
        norm : Normaliser
        """
        den = cls.__new__(cls)
        den.engine, den.run_dir, den.info, den.norm, den.model, den.load_seconds = "call", None, info, norm, model, 0.0
        den._configure(patch_hop=patch_hop, batch_size=batch_size, max_gain=max_gain, atten_lim_db=atten_lim_db)
        return den

    @property
    def name(self) -> str:
        """The run folder's name (the system's name in every table)."""
        return self.run_dir.name

    def grid(self, sr_in: int) -> tuple[int, int]:
        """``(align, margin)`` of block processing, in model-rate samples.

        A block that starts on a multiple of ``align`` and is read with ``margin``
        extra samples on each side sees exactly the frames, patches and
        overlap-adds of whole-file processing. ``align`` is also a whole number of
        samples at the input rate ``sr_in`` (Hz), so blocks can be cut before resampling.
        """
        sr = self.sample_rate
        if self.waveform:
            align, margin = self.context // 2, 2 * self.context
        else:
            c = self.fx.cfg
            hop = c.hop_length
            align = hop * self.patch_hop
            margin = (self.context + self.patch_hop + 2) * hop + 2 * c.n_fft
        rate_step = sr // math.gcd(sr, sr_in)  # model samples per whole number of input samples
        align = math.lcm(align, rate_step)
        margin = int(math.ceil(margin / align)) * align
        if sr_in != sr:
            margin += align * int(math.ceil(0.05 * sr / align))  # resampler support (soxr HQ), >= 50 ms
        return align, margin

    def predict_batch(self, patches: np.ndarray) -> np.ndarray:
        """One forward pass: ``(batch, context, n_bins)`` float32 -> same shape, as a NumPy float32 array.

        Keras runs ``predict_on_batch`` (one traced function, NumPy out on every backend: torch outputs
        that require grad cannot go through ``np.asarray``); the onnx engine runs its session.
        """
        if self.engine not in ("keras", "call"):  # an exported runtime
            return np.asarray(self.model(patches), dtype=np.float32)
        if self.engine == "call":  # an in-memory model (from_model): a plain call, valid in any strategy scope
            import keras

            return np.asarray(keras.ops.convert_to_numpy(self.model(patches, training=False)), dtype=np.float32)
        return np.asarray(self.model.predict_on_batch(patches), dtype=np.float32)

    def predict_frames(self, features: np.ndarray) -> np.ndarray:
        """The model's output per frame: ``(n_frames, n_bins)`` float32, normalised (mapping) or a mask in [0, 1].

        The features are normalised, cut into ``context``-frame patches every
        ``patch_hop`` frames, predicted in batches of ``batch_size`` and
        overlap-averaged back (Hann-weighted for waveform chunks, whose input is
        padded by half a chunk at both ends so every sample gets full weight).
        """
        n = features.shape[0]
        patches, starts, n_padded, pad = self.patches(features)
        pred = np.concatenate(
            [self.predict_batch(patches[i : i + self.batch_size]) for i in range(0, len(patches), self.batch_size)]
        )
        return overlap_average(pred, starts, n_padded, self.window)[pad : pad + n]

    def patches(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
        """The model inputs of a whole sequence, as :meth:`predict_frames` feeds them.

        Parameters
        ----------
        features : np.ndarray [shape=(n_frames, n_bins)], float32, un-normalised

        Returns
        -------
        patches : np.ndarray [shape=(n_patches, context, n_bins)], float32, normalised
        starts : np.ndarray [shape=(n_patches,)], int64
            First frame of each patch in the padded sequence.
        n_padded : int
            Frames of the padded sequence.
        pad : int
            Frames added in front (half a chunk for waveform runs, so every sample gets full
            Hann weight; 0 otherwise). A sequence shorter than one patch is also
            padded at the end by repeating its last frame.
        """
        x = self.norm.norm_x(features)
        pad = self.context // 2 if self.waveform else 0
        if pad:
            x = np.pad(x, ((pad, pad), (0, 0)))
        if x.shape[0] < self.context:  # repeat the edge frames so one patch fits
            x = np.pad(x, ((0, self.context - x.shape[0]), (0, 0)), mode="edge")
        starts = patch_starts(x.shape[0], self.context, self.patch_hop)
        return gather_patches(x, starts, self.context), starts, x.shape[0], pad

    def denoise_features(self, features: np.ndarray) -> np.ndarray:
        """Denoise un-normalised features ``(n_frames, n_bins)`` -> same shape, float32.

        ``mapping`` runs un-normalise the prediction; ``mask`` runs apply the
        predicted gain to the noisy magnitude (:meth:`FeatureExtractor.apply_mask`).
        """
        out = self.predict_frames(features)
        if self.target == "mask":
            return self.fx.apply_mask(features, out)
        return self.norm.denorm_y(out)

    def __call__(self, noisy: np.ndarray) -> np.ndarray:
        """Denoise a waveform.

        Parameters
        ----------
        noisy : np.ndarray [shape=(n_samples,)], float32, mono, at ``self.sample_rate``

        Returns
        -------
        np.ndarray [shape=(n_samples,)], float32
        """
        feats = self.fx(noisy)
        return self.fx.to_audio(
            self.denoise_features(feats), noisy, noisy_features=feats, max_gain=self.max_gain, min_gain=self.min_gain
        )

    # ------------------------------------------------------------ streaming (logic: inference.streaming)
    @property
    def streamer(self):
        """The :class:`speech_dae.inference.streaming.Streamer` behind :meth:`process_block` (created on first use)."""
        if getattr(self, "_streamer", None) is None:
            from .streaming import Streamer

            self._streamer = Streamer(self)
        return self._streamer

    @property
    def latency_samples(self) -> int:
        """Streaming latency: output sample ``t`` is returned once input sample ``t + latency_samples`` is fed."""
        return self.streamer.latency_samples

    @property
    def latency_seconds(self) -> float:
        """:attr:`latency_samples` in seconds."""
        return self.latency_samples / self.sample_rate

    def process_block(self, block: np.ndarray) -> np.ndarray:
        """Feed the next mono float32 block (any length) of a stream; returns the output samples now final.

        All outputs plus :meth:`flush` equal ``self(whole_signal)`` to float rounding.
        Raises AudioError for a block that is not 1-D float samples or holds NaN/Inf.
        """
        return self.streamer.process(block)

    def flush(self) -> np.ndarray:
        """End the stream: return the remaining output samples and reset (see :meth:`Streamer.flush`)."""
        return self.streamer.flush()

    def reset_stream(self) -> None:
        """Drop the current stream's state; the next :meth:`process_block` starts a new stream."""
        self.streamer.reset()
