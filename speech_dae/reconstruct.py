"""Stage 04: features -> model -> inverse -> waveform, plus spectrogram images and metrics.

Needs only ``models/<run>/`` (``model.keras``, ``run.json``, ``norm.npz``) and
audio files. For each input, the whole file goes through one batched
``predict``: its features are cut into ``context``-frame patches every
``reconstruct.patch_hop`` frames, the predicted patches are overlap-averaged
back into one frame sequence, un-normalised, and inverted to audio (phase
borrowing for logmag, mel-domain gain for fbank; see :mod:`speech_dae.features`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .artifacts import clear_temporaries, read_json, require_files, write_csv
from .audio import load_audio, validate_audio, write_audio
from .config import Config, FeatureConfig
from .dataset import Normaliser, gather_patches, patch_starts
from .errors import ArtifactError, AudioError
from .features import FeatureExtractor
from .inputs import Item, folder_items, manifest_items
from .metrics import si_sdr, snr

__all__ = ["Denoiser", "overlap_average", "reconstruct", "ReconstructSummary"]

log = logging.getLogger(__name__)

STAGE03 = "03_train_autoencoder.py"


def overlap_average(
    patches: np.ndarray, starts: np.ndarray, n_frames: int, window: np.ndarray | None = None
) -> np.ndarray:
    """Weighted average of overlapping patches: ``sum(w * patch) / sum(w)`` per frame.

    Parameters
    ----------
    patches : np.ndarray [shape=(n_patches, context, n_bins)]
    starts : np.ndarray [shape=(n_patches,)], int, unique
        First frame of each patch.
    n_frames : int
        Length of the output sequence.
    window : np.ndarray [shape=(context,)], optional
        Weight of each patch position (default: all ones). Frames no patch covers are 0.

    Returns
    -------
    np.ndarray [shape=(n_frames, n_bins)], float32

    Notes
    -----
    Spectral patches (``context <= n_bins``): a loop over the ``context``
    positions, each step vectorised over all patches (starts are unique, so
    fancy-index ``+=`` is exact). Waveform chunks: ``np.bincount`` per bin.
    With a Hann ``window`` and a hop of half the chunk this is the
    Hann-weighted overlap-add of the Conv1D audio-restoration design, written
    as ``sum(w * y) / sum(w)`` rather than ``sum(w * y) / sum(w**2)`` because the
    chunks are not windowed before the model (the identity model must return its input).
    """
    n_patches, context, n_bins = patches.shape
    w = np.ones(context, np.float32) if window is None else np.asarray(window, np.float32)
    starts = np.asarray(starts, dtype=np.int64)
    norm = np.zeros(n_frames, np.float64)
    if context <= n_bins:  # spectral patches: loop over the few patch positions, vectorised over patches
        acc = np.zeros((n_frames, n_bins), np.float64)
        for r in range(context):
            acc[starts + r] += w[r] * patches[:, r, :]
            norm[starts + r] += w[r]
    else:  # long chunks of few bins (waveform): one bincount per bin over every (patch, position)
        idx = (starts[:, None] + np.arange(context)).ravel()
        weights = np.broadcast_to(w, (n_patches, context)).ravel()
        norm = np.bincount(idx, weights=weights, minlength=n_frames)[:n_frames]
        acc = np.stack(
            [
                np.bincount(idx, weights=(patches[:, :, b] * w).ravel(), minlength=n_frames)[:n_frames]
                for b in range(n_bins)
            ],
            axis=1,
        )
    return (acc / np.where(norm > 0, norm, 1.0)[:, None]).astype(np.float32)


class Denoiser:
    """A trained run, ready to denoise waveforms.

    Parameters
    ----------
    run_dir : str or Path
        ``models/<run>/`` written by stage 03.
    patch_hop : int
        Frames between inference patches (1 = a patch at every frame). Waveform
        runs always use chunks every ``chunk_size // 2`` samples.
    batch_size : int
        Patches per forward pass.
    max_gain : float or None
        Bound on the per-bin magnitude gain over the noisy STFT (see
        :meth:`FeatureExtractor.to_audio`).
    engine : {"keras", "onnx"}
        Runs ``model.keras`` with Keras, or ``model.onnx`` (``speech-dae export``)
        with onnxruntime, without importing TensorFlow or Keras.

    Raises
    ------
    ArtifactError
        If the run folder is missing or incomplete (names stage 03), or ``model.onnx``
        is missing for ``engine="onnx"`` (names ``speech-dae export``).
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        patch_hop: int = 1,
        batch_size: int = 1024,
        max_gain: float | None = 1.0,
        engine: str = "keras",
    ):
        """See the class docstring. ``self.model`` is the Keras model, or for ``engine="onnx"`` a
        :class:`speech_dae.export.OnnxEngine` called the same way (``model(x, training=False)``);
        ``self.load_seconds`` is the engine's start-up time (imports and model load)."""
        t_start = time.perf_counter()
        if engine not in ("keras", "onnx"):
            from .errors import ConfigError

            raise ConfigError(f"unknown engine {engine!r}; choose keras or onnx")
        self.engine = engine
        needed = ["model.keras"] if engine == "keras" else []
        run_dir = require_files(run_dir, needed + ["run.json", "norm.npz"], stage_hint=STAGE03)
        self.run_dir = Path(run_dir)
        self.info = read_json(self.run_dir / "run.json", stage_hint=STAGE03)
        self.norm = Normaliser.load(self.run_dir / "norm.npz")
        self._configure(patch_hop=patch_hop, batch_size=batch_size, max_gain=max_gain)
        if engine == "onnx":
            if not (self.run_dir / "model.onnx").is_file():
                raise ArtifactError(
                    f"{self.run_dir}/model.onnx is missing; run `speech-dae export --model "
                    f"{self.run_dir} --format onnx` first (or use --engine keras)"
                )
            from .export import OnnxEngine  # onnxruntime only: no TensorFlow, no Keras

            self.model = OnnxEngine(self.run_dir / "model.onnx", input_shape=(self.context, self.fx.n_bins))
        else:
            import keras

            from . import models  # noqa: F401  (registers the custom activation mrelu for load_model)

            try:
                self.model = keras.saving.load_model(self.run_dir / "model.keras")
            except (ValueError, OSError) as exc:
                raise ArtifactError(
                    f"{self.run_dir}/model.keras cannot be loaded ({exc}); re-run {STAGE03} --force"
                ) from None
        self.load_seconds = time.perf_counter() - t_start

    def _configure(self, *, patch_hop: int, batch_size: int, max_gain: float | None) -> None:
        """Framing, target and patching from ``self.info`` (the keys of ``run.json``)."""
        self.sample_rate = int(self.info["sample_rate"])
        self.fx = FeatureExtractor(FeatureConfig(**self.info["features"]), self.sample_rate)
        self.context = int(self.info["context"])
        self.target = self.info.get("target", "mapping")
        self.waveform = self.info.get("feature") == "waveform"
        if self.waveform:  # Hann-weighted overlap-add of chunks every chunk_size // 2 samples
            self.patch_hop = self.context // 2
            self.window = np.hanning(self.context + 2)[1:-1].astype(np.float32)  # strictly positive weights
        else:
            self.patch_hop = min(int(patch_hop), self.context)  # a larger hop would leave frames uncovered
            self.window = None
        self.batch_size = int(batch_size)
        self.max_gain = max_gain

    @classmethod
    def from_model(
        cls,
        model,
        info: dict,
        norm: Normaliser,
        *,
        patch_hop: int = 1,
        batch_size: int = 1024,
        max_gain: float | None = 1.0,
    ) -> Denoiser:
        """A Denoiser around an in-memory Keras model, e.g. during training (no run folder yet).

        Parameters
        ----------
        model : keras.Model
            Called directly (``model(x, training=False)``), which also works inside a distribution strategy.
        info : dict
            The ``run.json`` keys ``sample_rate``, ``features``, ``context``, ``feature`` and ``target``.
        norm : Normaliser
        """
        den = cls.__new__(cls)
        den.engine, den.run_dir, den.info, den.norm, den.model, den.load_seconds = "call", None, info, norm, model, 0.0
        den._configure(patch_hop=patch_hop, batch_size=batch_size, max_gain=max_gain)
        return den

    @property
    def name(self) -> str:
        return self.run_dir.name

    def predict_batch(self, patches: np.ndarray) -> np.ndarray:
        """One forward pass: ``(batch, context, n_bins)`` float32 -> same shape, as a NumPy float32 array.

        Keras runs ``predict_on_batch`` (one traced function, NumPy out on every backend: torch outputs
        that require grad cannot go through ``np.asarray``); the onnx engine runs its session.
        """
        if self.engine == "onnx":
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
        x = self.norm.norm_x(features)
        pad = self.context // 2 if self.waveform else 0
        if pad:
            x = np.pad(x, ((pad, pad), (0, 0)))
        if x.shape[0] < self.context:  # repeat the edge frames so one patch fits
            x = np.pad(x, ((0, self.context - x.shape[0]), (0, 0)), mode="edge")
        starts = patch_starts(x.shape[0], self.context, self.patch_hop)
        patches = gather_patches(x, starts, self.context)
        pred = np.concatenate(
            [self.predict_batch(patches[i : i + self.batch_size]) for i in range(0, len(patches), self.batch_size)]
        )
        return overlap_average(pred, starts, x.shape[0], self.window)[pad : pad + n]

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
        return self.fx.to_audio(self.denoise_features(feats), noisy, noisy_features=feats, max_gain=self.max_gain)

    # ------------------------------------------------------------ streaming (logic: speech_dae.streaming)
    @property
    def streamer(self):
        """The :class:`speech_dae.streaming.Streamer` behind :meth:`process_block` (created on first use)."""
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


@dataclass
class ReconstructSummary:
    run: str
    rows: list = field(default_factory=list)
    out_dir: Path | None = None
    images_dir: Path | None = None
    seconds: float = 0.0
    audio_s: float = 0.0
    report: Path | None = None

    def lines(self) -> list[str]:
        out = []
        scored = [r for r in self.rows if r.get("si_sdr_out") not in (None, "")]
        for r in self.rows:
            if r in scored:
                out.append(
                    f"{r['id']}: SNR {r['snr_in']:6.2f} -> {r['snr_out']:6.2f} dB, "
                    f"SI-SDR {r['si_sdr_in']:6.2f} -> {r['si_sdr_out']:6.2f} dB"
                )
            elif r.get("not_scored"):
                out.append(f"{r['id']}: denoised, not scored ({r['not_scored']})")
            else:
                out.append(f"{r['id']}: denoised (no clean reference to score against)")
        if scored:
            by_snr: dict[str, list] = {}
            for r in scored:
                by_snr.setdefault(str(r.get("snr_db", "")), []).append(r)
            for key, group in sorted(by_snr.items(), key=lambda kv: float(kv[0]) if kv[0] else 0.0):
                if key:
                    out.append(f"  input SNR {float(key):+g} dB ({len(group)} files): " + _means(group))
            out.append(f"mean over {len(scored)} files: " + _means(scored))
        rt = self.audio_s / self.seconds if self.seconds else 0.0
        out.append(
            f"wrote {len(self.rows)} denoised files to {self.out_dir}/ and images to {self.images_dir}/ "
            f"({rt:.0f}x real time)"
        )
        if self.report is not None:
            out.append(f"listening report: {self.report} (open it in a browser)")
        return out


def _means(rows) -> str:
    m = {k: float(np.mean([r[k] for r in rows])) for k in ("snr_in", "snr_out", "si_sdr_in", "si_sdr_out")}
    return (
        f"SNR {m['snr_in']:.2f} -> {m['snr_out']:.2f} dB ({m['snr_out'] - m['snr_in']:+.2f}), "
        f"SI-SDR {m['si_sdr_in']:.2f} -> {m['si_sdr_out']:.2f} dB ({m['si_sdr_out'] - m['si_sdr_in']:+.2f})"
    )


def _default_inputs(den: Denoiser) -> list[Item]:
    fdir = Path(den.info.get("features_dir", ""))
    if not (fdir / "manifest.csv").is_file():
        raise ArtifactError(
            f"the features folder this model was trained from ({fdir}) is gone, so there are no "
            "default test mixtures; pass --input WAV_OR_DIR (and --clean DIR to score)"
        )
    return manifest_items(fdir)


def reconstruct(
    cfg: Config,
    *,
    model_dir: str | Path,
    inputs: str | Path | None = None,
    clean: str | Path | None = None,
    out_root: str | Path = "outputs",
    images_root: str | Path = "images",
    progress: bool = True,
    report_examples: int | None = None,
) -> ReconstructSummary:
    """Run stage 04: denoise files with a trained run, write WAVs, images, metrics and ``report.html``.

    Parameters
    ----------
    cfg : Config
        Uses the ``reconstruct`` section.
    model_dir : str or Path
        ``models/<run>/``.
    inputs : str or Path, optional
        A noisy audio file or folder. Default: the test mixtures listed in the
        manifest of the features the model was trained from (scored against their references).
    clean : str or Path, optional
        Clean references for ``inputs``, matched by relative path.
    report_examples : int, optional
        Files shown with noisy / denoised / clean players and spectrograms in ``report.html``
        (default: one per input SNR, see :func:`speech_dae.report.pick_examples`; 0: none).

    Returns
    -------
    ReconstructSummary
        Also written: ``outputs/<run>/<id>_denoised.wav``, ``images/<run>/<id>.png``,
        ``outputs/<run>/report.html`` (with its ``report_files/``) and, when references are known,
        ``outputs/<run>/metrics.csv``.

    Raises
    ------
    ArtifactError
        If the run folder is missing or incomplete (names stage 03).
    AudioError
        If ``inputs`` does not exist or holds no audio.
    ConfigError
        If ``report_examples`` is negative.
    """
    from . import report

    r = cfg.reconstruct
    den = Denoiser(model_dir, patch_hop=r.patch_hop, batch_size=r.batch_size, max_gain=r.max_gain)
    items = _default_inputs(den) if inputs is None else folder_items(inputs, clean)
    out_dir, img_dir = Path(out_root) / den.name, Path(images_root) / den.name
    sr = den.sample_rate
    summary = ReconstructSummary(den.name, out_dir=out_dir, images_dir=img_dir)
    t_model = 0.0
    skipped = []
    examples = {it.uid: k for k, it in enumerate(report.pick_examples(items, report_examples))}
    shown = []
    report.clear_assets(out_dir)
    for folder in (out_dir, img_dir):  # both are rewritten in place: drop a killed run's half-written files
        clear_temporaries(folder)
    unscored = 0
    for uid, path, ref_path, snr_db in tqdm(items, desc="04 reconstruct", unit="file", disable=not progress):
        try:
            noisy, _ = load_audio(path, sample_rate=sr)
            noisy = validate_audio(noisy, sample_rate=sr, min_duration_s=den.fx.cfg.n_fft / sr, name=str(path))
        except AudioError as exc:
            skipped.append(str(exc))
            log.warning("skipped: %s", exc)
            continue
        ref = None
        if ref_path is not None:
            try:  # a broken or silent reference costs that file its scores, not the run
                ref, _ = load_audio(ref_path, sample_rate=sr)
                ref = validate_audio(ref, sample_rate=sr, silence_rms_db=cfg.audio.silence_rms_db, name=str(ref_path))
            except AudioError as exc:
                ref, unscored = None, unscored + 1
                log.warning("not scored: %s: the clean reference is unusable: %s", path, exc)
                not_scored = f"clean reference unusable: {exc}"
        t0 = time.perf_counter()
        y_hat = den(noisy)
        t_model += time.perf_counter() - t0
        summary.audio_s += noisy.size / sr
        out_wav = write_audio(out_dir / f"{uid}_denoised.wav", y_hat, sr)
        row = {"id": uid, "snr_db": snr_db, "noisy_file": str(path)}
        if ref_path is not None and ref is None:
            row["not_scored"] = not_scored
        panels = [("noisy", noisy), ("denoised", y_hat)]
        if ref is not None:
            n = min(ref.size, noisy.size)
            ref = ref[:n]
            row.update(
                snr_in=snr(ref, noisy[:n]) + 0.0,
                snr_out=snr(ref, y_hat[:n]) + 0.0,  # + 0.0: no "-0.0"
                si_sdr_in=si_sdr(ref, noisy[:n]) + 0.0,
                si_sdr_out=si_sdr(ref, y_hat[:n]) + 0.0,
            )
            panels = [
                (f"noisy: SNR {row['snr_in']:.1f} dB, SI-SDR {row['si_sdr_in']:.1f} dB", noisy),
                (
                    f"denoised ({den.info['model']}, {den.info['feature']}): SNR {row['snr_out']:.1f} dB, "
                    f"SI-SDR {row['si_sdr_out']:.1f} dB",
                    y_hat,
                ),
                ("clean reference", ref),
            ]
        c = den.fx.cfg
        from .plots import plot_spectrograms

        plot_spectrograms(
            panels,
            img_dir / f"{uid}.png",
            sample_rate=sr,
            n_fft=c.n_fft,
            hop_length=c.hop_length,
            max_s=r.image_max_s,
            suptitle=uid,
        )
        summary.rows.append(row)
        if uid in examples:
            signals = [
                ("noisy", "noisy input", noisy, None),
                ("denoised", f"denoised ({den.info['model']}, {den.info['feature']})", y_hat, out_wav),
            ]
            signals += [("clean", "clean reference", ref, None)] if ref is not None else []
            cards = report.save_example(
                out_dir,
                examples[uid],
                signals,
                sample_rate=sr,
                n_fft=c.n_fft,
                hop_length=c.hop_length,
                image_max_s=r.image_max_s,
            )
            if ref is not None:
                for cd, side in zip(cards, ("in", "out")):
                    cd["scores"] = (
                        f"SNR {report.fmt_number(row[f'snr_{side}'], 1)} dB · "
                        f"SI-SDR {report.fmt_number(row[f'si_sdr_{side}'], 1)} dB"
                    )
            shown.append({"id": uid, "snr_db": snr_db, "cards": cards, "k": examples[uid]})
    if not summary.rows:
        raise AudioError(
            f"no input could be denoised ({len(skipped)} skipped; first: {skipped[0] if skipped else '-'})"
        )
    if any("si_sdr_out" in row for row in summary.rows):
        fields = ("id", "snr_db", "snr_in", "snr_out", "si_sdr_in", "si_sdr_out", "noisy_file")
        write_csv(
            out_dir / "metrics.csv",
            [
                {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
                for row in summary.rows
                if "si_sdr_out" in row
            ],
            fields,
        )
    summary.seconds = t_model
    rt = f", {summary.audio_s / t_model:.0f}× real time" if t_model else ""
    summary.report = report.reconstruct_report(
        out_dir,
        summary.rows,
        sorted(shown, key=lambda e: e["k"]),
        title=f"Reconstruction: {den.name}",
        meta=[
            f"{den.info['model']} on {den.info['feature']} features ({den.target}) from {den.run_dir}; "
            f"{len(summary.rows)} file(s) denoised{rt}"
            + (f", {len(skipped)} skipped" if skipped else "")
            + (f", {unscored} not scored (clean reference unusable)" if unscored else "")
            + "."
        ],
    )
    return summary
