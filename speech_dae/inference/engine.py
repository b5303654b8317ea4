"""The inference engine: one loader of a run folder, and the path from a noisy waveform to a denoised one.

:class:`Denoiser` reads ``models/<run>/`` (``run.json`` as a
:class:`~speech_dae.runinfo.RunInfo`, ``norm.npz``, and ``model.keras`` or an
export), and denoises a whole waveform in one batched pass: features -> the network ->
un-normalisation or mask -> inverse features (phase borrowing for STFT
features, mel-domain gain for fbank; see :mod:`speech_dae.features`).

The network runs in one of two ways:

- **sequence** (models whose graph takes any number of frames:
  :func:`speech_dae.models.sequence_context`, e.g. ``tcn`` and ``type1``): the
  whole normalised feature sequence in one call, or for long inputs blocks of
  :attr:`Denoiser.block_frames` frames read with ``past`` / ``future`` frames of
  context on each side, of which only the middle is kept, with no overlap
  averaging: every frame goes through the network once, and the blocks give
  exactly the one-call output;
- **patch** (every other model): ``context``-frame patches every ``patch_hop``
  frames, overlap-averaged.

Causal sequence models also have a stateful frame step
(:func:`speech_dae.models.build_step`), which streams frame by frame with one
STFT window of latency (:class:`speech_dae.inference.streaming.FrameStreamer`).
Stage 04, stage 05, ``speech-dae denoise``,
export, streaming and the TensorBoard callback all denoise through it.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from ..artifacts import STAGE03, file_sha256, require_files
from ..config import FeatureConfig
from ..errors import ArtifactError, ConfigError
from ..features import FeatureExtractor
from ..framing import Normaliser, gather_patches, overlap_average, patch_starts
from ..runinfo import RunInfo
from .runtimes import FORMATS, OnnxEngine, load_runtime

__all__ = ["Denoiser", "ENGINES", "INFERENCE", "PRETRAINED", "attenuation_floor", "onnx_is_current"]


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

#: What runs the network: Keras on ``model.keras``, an export of ``speech-dae export``, or ``auto``:
#: ``model.onnx`` when it was exported from this very ``model.keras`` (:func:`onnx_is_current`) and
#: onnxruntime is installed, else Keras.
ENGINES = ("auto", "keras", "onnx", "tflite")
#: How the network covers a sequence: ``sequence`` (one call, or blocks with context margins),
#: ``patch`` (overlap-averaged patches), or ``auto`` (sequence wherever the model and engine allow it).
INFERENCE = ("auto", "sequence", "patch")
#: Frames per network call in sequence inference (2**14 frames: 131 s at a 128-sample hop and 16 kHz).
BLOCK_FRAMES = 1 << 14


def onnx_is_current(run_dir: str | Path, runtime: OnnxEngine | None = None) -> bool:
    """True if ``run_dir/model.onnx`` exists and was exported from the ``model.keras`` beside it.

    ``speech-dae export`` records the SHA-256 of ``model.keras`` in the ONNX file's metadata; a
    run retrained after its export no longer matches, and ``engine="auto"`` then runs Keras.
    A folder with ``model.onnx`` and no ``model.keras`` (an ONNX-only deployment) counts as current.
    ``runtime``: the file already loaded (saves loading it again).
    """
    run_dir = Path(run_dir)
    onnx_path = run_dir / FORMATS["onnx"]
    if not onnx_path.is_file():
        return False
    recorded = (runtime or OnnxEngine(onnx_path)).keras_sha256
    keras_path = run_dir / "model.keras"
    return not keras_path.is_file() or recorded == file_sha256(keras_path)


class Denoiser:
    """A trained run, ready to denoise waveforms.

    Parameters
    ----------
    run_dir : str or Path, optional
        ``models/<run>/`` written by stage 03. Default: the pretrained model shipped in the package
        (:data:`PRETRAINED`: ``configs/best.yaml`` trained on the corpus, 16 kHz; its training data and
        licences in ``speech_dae/pretrained/CREDITS.md``).
    patch_hop : int or None
        Patch inference: frames between inference patches (1 = a patch at every frame). None
        (default): the hop the run was validated with (``run.json`` ``patch_hop``). Not used by
        sequence inference. Waveform runs always use chunks every ``chunk_size // 2`` samples.
    batch_size : int
        Patches per forward pass.
    max_gain : float or None
        Bound on the per-bin magnitude gain over the noisy STFT (see
        :meth:`FeatureExtractor.to_audio`).
    atten_lim_db : float >= 0 or None
        Strength control: no bin is attenuated by more than this many dB (the gain over the
        noisy STFT is floored at ``10 ** (-atten_lim_db / 20)``, DeepFilterNet's attenuation
        limit; waveform runs mix that share of the noisy input back in). None (default): no limit.
    engine : {"auto", "keras", "onnx", "tflite"}
        Runs ``model.keras`` with Keras, or ``model.onnx`` / ``model.tflite``
        (``speech-dae export``) with onnxruntime (without importing TensorFlow
        or Keras) / the TFLite interpreter. ``auto`` (default): ``model.onnx`` if it was
        exported from this ``model.keras`` (:func:`onnx_is_current`) and onnxruntime is
        installed, else Keras.
    inference : {"auto", "sequence", "patch"}
        ``auto`` (default): sequence inference for models that take any number of frames
        (:func:`speech_dae.models.sequence_context`; Keras, or an ONNX export of this version)
        and were trained on patches at least as long as their context (``past + future + 1 <=
        context``, e.g. the best recipe's causal TCN, 31 frames in 64-frame patches), patches
        otherwise (e.g. ``type1`` at context 11 reaches 8 frames each way, so every training frame saw a
        patch edge). ``sequence`` forces it where possible and raises elsewhere; ``patch`` forces patches.

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
    sequence : (int, int) or None
        ``(past, future)`` frames of context in sequence inference; None in patch inference.
    stateful : bool
        True if the run has a stateful frame step (a causal sequence model): streaming is frame by frame.
    block_frames : int
        Frames per network call in sequence inference (:data:`BLOCK_FRAMES`).
    trained_model : keras.Model
        Keras engine only: ``model.keras`` as stage 03 saved it (fixed patch shape); in sequence
        inference ``model`` is its free-length copy (:func:`speech_dae.models.free_length`).

    Raises
    ------
    ArtifactError
        If the run folder is missing or incomplete (names stage 03), its ``run.json`` is
        not of this version (:meth:`RunInfo.load`), or ``model.onnx`` / ``model.tflite``
        is missing for ``engine="onnx"`` / ``"tflite"`` (names ``speech-dae export``).
    ConfigError
        For an unknown ``engine`` or ``inference``, or ``inference="sequence"`` for a model or
        engine that cannot run whole sequences.
    """

    def __init__(
        self,
        run_dir: str | Path | None = None,
        *,
        patch_hop: int | None = None,
        batch_size: int = 1024,
        max_gain: float | None = 1.0,
        engine: str = "auto",
        atten_lim_db: float | None = None,
        inference: str = "auto",
    ):
        """See the class docstring. ``self.model`` is the Keras model, or for the exported engines a
        runtime of :mod:`speech_dae.inference.runtimes` called the same way (``model(x, training=False)``);
        ``self.load_seconds`` is the engine's start-up time (imports and model load)."""
        t_start = time.perf_counter()
        if engine not in ENGINES:
            raise ConfigError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        if inference not in INFERENCE:
            raise ConfigError(f"unknown inference {inference!r}; choose one of {', '.join(INFERENCE)}")
        self.run_dir = Path(PRETRAINED if run_dir is None else run_dir)
        runtime = None
        if engine == "auto":
            engine, runtime = self._pick_engine()
        self.engine = engine
        needed = ["model.keras"] if engine == "keras" else []
        require_files(self.run_dir, needed + ["run.json", "norm.npz"], stage_hint=STAGE03)
        self.info = RunInfo.load(self.run_dir)
        self.norm = Normaliser.load(self.run_dir / "norm.npz")
        self._configure(patch_hop=patch_hop, batch_size=batch_size, max_gain=max_gain, atten_lim_db=atten_lim_db)
        self._step = None  # Keras: the frame step, built on first streaming use
        if engine != "keras":
            path = self.run_dir / FORMATS[engine]
            if not path.exists():
                raise ArtifactError(
                    f"{path} is missing; run `speech-dae export --model {self.run_dir} --format {engine}` first "
                    "(or use --engine keras)"
                )
            # onnx: onnxruntime only, no TensorFlow, no Keras
            self.model = runtime or load_runtime(path, engine, input_shape=(self.context, self.fx.n_bins))
            sequence = getattr(self.model, "sequence", None)
            self._set_inference(inference, sequence, stateful=bool(getattr(self.model, "state_names", ())))
        else:
            import keras

            from .. import models  # also registers the custom activation mrelu for load_model

            try:
                self.model = self.trained_model = keras.saving.load_model(self.run_dir / "model.keras")
            except (ValueError, OSError) as exc:
                raise ArtifactError(
                    f"{self.run_dir}/model.keras cannot be loaded ({exc}); re-run {STAGE03} --force"
                ) from None
            sequence = None if self.waveform else models.sequence_context(self.info.model, self.info.hparams)
            self._set_inference(inference, sequence, stateful=models.has_step(self.info.model, self.info.hparams))
            if self.sequence is not None:
                self.model = models.free_length(self.model)
        self.load_seconds = time.perf_counter() - t_start

    def _pick_engine(self) -> tuple[str, OnnxEngine | None]:
        """``engine="auto"``: ``("onnx", runtime)`` for a current ``model.onnx``, else ``("keras", None)``."""
        if not (self.run_dir / FORMATS["onnx"]).is_file():  # (also a missing folder: Keras, which says so)
            return "keras", None
        try:
            runtime = OnnxEngine(self.run_dir / FORMATS["onnx"])
        except (ConfigError, ArtifactError):  # no onnxruntime, or a file it cannot load: Keras
            return "keras", None
        return ("onnx", runtime) if onnx_is_current(self.run_dir, runtime) else ("keras", None)

    def _set_inference(self, inference: str, sequence: tuple[int, int] | None, *, stateful: bool) -> None:
        if inference == "sequence" and sequence is None:
            raise ConfigError(
                f"run {self.run_dir.name} ({self.info.model}, engine {self.engine}) cannot run whole sequences: "
                "its graph takes fixed patches (use inference patch, or for tcn/type1 the keras engine or a "
                "fresh speech-dae export --format onnx)"
            )
        if inference == "auto" and sequence is not None and sum(sequence) + 1 > self.context:
            # trained on patches shorter than its own context: every training frame saw a patch edge's zero
            # padding, so whole sequences would be inputs it never met (type1 at context 11 reaches 8 + 8)
            sequence = None
        self.sequence = sequence if inference != "patch" else None
        self.stateful = bool(stateful and self.sequence is not None and self.fx.kind not in ("fbank",))
        self.inference = "sequence" if self.sequence is not None else "patch"

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
        self.block_frames = BLOCK_FRAMES
        self.max_gain = max_gain
        self.atten_lim_db, self.min_gain = atten_lim_db, attenuation_floor(atten_lim_db)
        self.sequence, self.stateful, self.inference = None, False, "patch"

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

        Patch inference, unless the model's frame axis is already free (built for any number of
        frames) and the registry gives it a sequence context.

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
        den._step = None
        if not den.waveform and model.input_shape[1] is None:
            from .. import models

            den.sequence = models.sequence_context(info.model, info.hparams)
            den.inference = "patch" if den.sequence is None else "sequence"
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
        elif self.sequence is not None:  # any frame boundary; the context frames plus the STFT windows
            c = self.fx.cfg
            align = c.hop_length
            margin = (max(self.sequence) + 2) * c.hop_length + 2 * c.n_fft
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
        """One forward pass: ``(batch, frames, n_bins)`` float32 -> same shape, as a NumPy float32 array.

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

        Sequence inference: the normalised features in calls of at most :attr:`block_frames`
        frames, each read with ``past`` frames before and ``future`` after, of which only the
        middle is kept (equal to one call on the whole sequence). Patch inference: the features
        are normalised, cut into ``context``-frame patches every ``patch_hop`` frames, predicted
        in batches of ``batch_size`` and overlap-averaged back (Hann-weighted for waveform chunks,
        whose input is padded by half a chunk at both ends so every sample gets full weight).
        """
        if self.sequence is not None:
            return self.predict_sequence(self.norm.norm_x(features))
        n = features.shape[0]
        patches, starts, n_padded, pad = self.patches(features)
        pred = np.concatenate(
            [self.predict_batch(patches[i : i + self.batch_size]) for i in range(0, len(patches), self.batch_size)]
        )
        return overlap_average(pred, starts, n_padded, self.window)[pad : pad + n]

    def predict_sequence(self, x: np.ndarray) -> np.ndarray:
        """Sequence inference on normalised features: ``(n_frames, n_bins)`` -> ``(n_frames, n_bins)`` float32.

        One call when ``n_frames <= block_frames``; otherwise blocks of ``block_frames`` frames
        with the model's ``past`` / ``future`` context read on each side (no overlap averaging).
        """
        past, future = self.sequence
        n = x.shape[0]
        out = np.empty(x.shape, np.float32)
        for s in range(0, n, self.block_frames):
            e = min(n, s + self.block_frames)
            a, b = max(0, s - past), min(n, e + future)
            out[s:e] = self.predict_batch(x[None, a:b])[0, s - a : e - a]
        return out

    def patches(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
        """The model inputs of a whole sequence in patch inference, as :meth:`predict_frames` feeds them.

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

    def denoised_stft(self, S: np.ndarray, features: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The output STFT of some frames: the network's ``out`` on the noisy ``S`` whose features are ``features``.

        Parameters
        ----------
        S : np.ndarray [shape=(n_frames, n_fft // 2 + 1)], complex64
        features : np.ndarray [shape=(n_frames, n_bins)], float32, un-normalised
        out : np.ndarray [shape=(n_frames, n_bins)], float32
            :meth:`predict_frames` of those frames (a mask, or normalised clean features).

        Returns
        -------
        np.ndarray [shape=(n_frames, n_fft // 2 + 1)], complex
            What :meth:`FeatureExtractor.to_audio` would invert, with this run's ``max_gain`` and
            attenuation limit (masks of the STFT magnitude types in one multiply:
            :meth:`FeatureExtractor.masked_stft`).
        """
        kw = dict(noisy_features=features, max_gain=self.max_gain, min_gain=self.min_gain)
        if self.target == "mask":
            return self.fx.masked_stft(S, out, **kw)
        return self.fx.denoised_stft(self.norm.denorm_y(out), S, **kw)

    def __call__(self, noisy: np.ndarray) -> np.ndarray:
        """Denoise a waveform.

        Parameters
        ----------
        noisy : np.ndarray [shape=(n_samples,)], float32, mono, at ``self.sample_rate``

        Returns
        -------
        np.ndarray [shape=(n_samples,)], float32

        Raises
        ------
        AudioError
            If the signal is not 1-D or is shorter than one analysis window.
        """
        noisy = np.asarray(noisy, dtype=np.float32)
        if self.waveform:
            return self.fx.to_audio(self.denoise_features(self.fx(noisy)), noisy, min_gain=self.min_gain)
        self.fx.check_length(noisy)
        S = self.fx.stft(noisy)  # one STFT: the phase of the output, and the features of every type but fbank
        feats = self.fx(noisy) if self.fx.kind == "fbank" else self.fx.from_stft(S)
        return self.fx.istft(self.denoised_stft(S, feats, self.predict_frames(feats)), length=noisy.size)

    # ------------------------------------------------------------ frame step (causal sequence models)
    def initial_state(self) -> list:
        """Zero state of the frame step (one stream): the causal zero padding of a sequence's start.

        Raises
        ------
        ConfigError
            If the run has no frame step (:attr:`stateful` is False).
        """
        self._require_step()
        if self.engine == "onnx":
            return self._step_runtime().initial_state(1)
        return [np.zeros((1, *tuple(int(d) for d in t.shape[1:])), np.float32) for t in self._step_model().inputs[1:]]

    def step(self, x: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        """The frame step: normalised features of the next ``T >= 1`` frames ``(T, n_bins)`` and the state.

        Returns
        -------
        out : np.ndarray [shape=(T, n_bins)], float32
            The network's output for those frames (equal to one call on the whole sequence so far).
        state : list of np.ndarray
            The state after them.
        """
        self._require_step()
        x = np.ascontiguousarray(x[None], dtype=np.float32)
        if self.engine == "onnx":
            y, state = self._step_runtime().step(x, state)
        else:
            res = self._step_model().predict_on_batch([x, *state])
            y, state = res[0], [np.asarray(r) for r in res[1:]]
        return np.asarray(y[0], dtype=np.float32), state

    def _require_step(self) -> None:
        if not self.stateful:
            raise ConfigError(
                f"run {getattr(self.run_dir, 'name', '?')} has no frame step (only causal tcn runs in sequence "
                "inference, with STFT features and the keras or a fresh onnx engine)"
            )

    def _step_runtime(self) -> OnnxEngine:
        """onnx engine: a second session of ``model.onnx`` with one thread, for the frame step.

        A stream's calls carry one or two frames: waking a second thread costs more than it saves
        (per call on 2 cores: 81 us with one thread, 160 us with two, ``benchmarks/streaming.py``).
        """
        if getattr(self, "_stream_rt", None) is None:
            self._stream_rt = OnnxEngine(self.model.path, threads=1)
        return self._stream_rt

    def _step_model(self):
        if self._step is None:
            from .. import models

            self._step = models.build_step(self.info.model, self.trained_model, self.info.hparams)
        return self._step

    # ------------------------------------------------------------ streaming (logic: inference.streaming)
    @property
    def streamer(self):
        """The streaming state behind :meth:`process_block` (created on first use): a
        :class:`~speech_dae.inference.streaming.FrameStreamer` for runs with a frame step (:attr:`stateful`),
        else a :class:`~speech_dae.inference.streaming.Streamer`."""
        if getattr(self, "_streamer", None) is None:
            from .streaming import FrameStreamer, Streamer

            self._streamer = FrameStreamer(self) if self.stateful else Streamer(self)
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
