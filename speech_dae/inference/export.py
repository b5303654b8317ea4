"""``speech-dae export``: a trained run as ONNX, TFLite or TensorFlow SavedModel, checked against Keras.

:func:`export_run` writes into the run folder

==============  ====================  ====================================================================
``--format``    file                  written by
==============  ====================  ====================================================================
``onnx``        ``model.onnx``        ``keras.Model.export(format="onnx")`` (tf2onnx)
``tflite``      ``model.tflite``      ``tf.lite.TFLiteConverter.from_saved_model`` on a SavedModel export
``savedmodel``  ``saved_model/``      ``keras.Model.export(format="tf_saved_model")`` (endpoint ``serve``)
==============  ====================  ====================================================================

The export is written under a temporary name in the run folder, then checked:
real patches (the run's dataset, or an audio file's features) go through the
Keras model and the exported one, and the largest absolute difference must be
below :data:`PARITY_TOL`. Only then is it renamed to its final name. When the
check fails the export is kept for inspection as ``model.parity-failed.onnx``
(``.tflite``; ``saved_model.parity-failed/``), an earlier ``model.onnx`` is
left as it was, and :class:`~speech_dae.errors.ArtifactError` is raised.

Every model is exported with a dynamic batch axis: input ``(batch, context,
n_bins)`` float32 (waveform runs: ``(batch, chunk_size, 1)``), output of the
same shape. ONNX exports of sequence models (:func:`speech_dae.models.sequence_context`)
take any number of frames ``(batch, T, n_bins)``; for causal ones (``tcn``) the file is
the stateful frame step (:func:`speech_dae.models.build_step`: ``frames`` plus one
``state{i}`` per dilated block in, outputs and new states out), which serves both
whole files (zero state) and frame-by-frame streaming, and its parity check also
steps a sequence through it in pieces of 1-5 frames carrying the state. The file's
metadata records the context frames and the SHA-256 of the ``model.keras`` it
came from (``engine="auto"`` uses it only while they match).
:class:`~speech_dae.inference.runtimes.OnnxEngine` runs
``model.onnx`` with onnxruntime alone (``speech-dae denoise --engine onnx``
starts without TensorFlow or Keras); this module imports them only when it exports.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import load_audio, validate_audio
from ..errors import ArtifactError, ConfigError
from ..framing import even_indices, gather_patches
from .engine import Denoiser
from .runtimes import FORMATS, load_runtime

__all__ = [
    "PARITY_TOL",
    "export_model",
    "parity_patches",
    "export_run",
    "ExportSummary",
]

log = logging.getLogger(__name__)

#: Largest accepted ``max |exported - keras|`` over the parity patches (normalised features or mask units).
PARITY_TOL = 1e-4
#: Splits of the run's dataset searched for parity patches, in this order.
_PARITY_SPLITS = ("test", "val", "train")


def failed_name(fmt: str) -> str:
    """Name under which an export that failed the parity check is kept: ``model.parity-failed.onnx`` etc."""
    final = FORMATS[fmt]
    stem, dot, suffix = final.partition(".")
    return f"{stem}.parity-failed{dot}{suffix}"


# ------------------------------------------------------------------ writers
def _quiet_tf_logs() -> None:
    for name in ("tf2onnx", "tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _write_onnx(model, path: Path) -> None:
    model.export(str(path), format="onnx", verbose=False)


def _write_savedmodel(model, path: Path) -> None:
    model.export(str(path), format="tf_saved_model", verbose=False)


def _write_tflite(model, path: Path) -> None:
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix=".tflite-", dir=path.parent) as tmp:
        _write_savedmodel(model, Path(tmp) / "saved_model")
        data = tf.lite.TFLiteConverter.from_saved_model(str(Path(tmp) / "saved_model")).convert()
    path.write_bytes(data)


_WRITERS = {"onnx": _write_onnx, "tflite": _write_tflite, "savedmodel": _write_savedmodel}


def export_model(model, path: str | Path, fmt: str) -> Path:
    """Write a Keras model to ``path`` in format ``fmt`` (not atomic; :func:`export_run` renames it into place).

    The model is called once on zeros of its input shape first (the ONNX
    exporter needs built, traced layers). The batch axis stays dynamic.

    Parameters
    ----------
    model : keras.Model
        Input ``(None, *shape)`` (a free frame axis stays free), or a frame step with state inputs and outputs.
    path : str or Path
        File (onnx, tflite) or folder (savedmodel) to create.
    fmt : {"onnx", "tflite", "savedmodel"}

    Raises
    ------
    ConfigError
        For an unknown format.
    ArtifactError
        If the converter fails on this model (the message names the model, the
        format, the converter's reason and the formats to try instead).
    """
    if fmt not in _WRITERS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    path = Path(path)
    _quiet_tf_logs()
    # one call on zeros (a free frame axis: 8 frames; states: their own shapes)
    dummy = [np.zeros((1, *(8 if d is None else int(d) for d in t.shape[1:])), np.float32) for t in model.inputs]
    model(dummy if len(dummy) > 1 else dummy[0], training=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _WRITERS[fmt](model, path)
    except OSError as exc:  # the disk, not the model
        raise ArtifactError(
            f"cannot write {path} ({exc.strerror or exc}); free some space or check permissions"
        ) from None
    except Exception as exc:  # converters raise many types (ValueError, ConverterError, tf2onnx errors, ...)
        others = ", ".join(f for f in FORMATS if f != fmt)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ArtifactError(
            f"model {getattr(model, 'name', '?')} cannot be exported to {fmt} "
            f"({type(exc).__name__}: {reason}); try --format {others}"
        ) from None
    return path


def _export_onnx(den, model, path: Path) -> None:
    """Write ``model.onnx``: the frame step of a causal model (:func:`speech_dae.models.build_step_onnx`,
    written from the weights: half the nodes of the converter's graph), else ``model`` through tf2onnx;
    with the sequence context and the source ``model.keras``'s SHA-256 in its metadata."""
    import onnx

    from .. import models
    from ..artifacts import file_sha256
    from .runtimes import META_FUTURE, META_PAST, META_SHA256

    if den.stateful:
        proto = models.build_step_onnx(den.info.model, den.trained_model, den.info.hparams)
    else:
        export_model(model, path, "onnx")
        proto = onnx.load(str(path))
    meta = {META_SHA256: file_sha256(den.run_dir / "model.keras")}
    if den.sequence is not None:
        meta.update({META_PAST: str(den.sequence[0]), META_FUTURE: str(den.sequence[1])})
    onnx.helper.set_model_props(proto, meta)
    onnx.save(proto, str(path))


def _stream_diff(engine, den, patches: np.ndarray, n_patches: int = 8) -> float:
    """Largest ``|step - keras|`` over the first patches laid end to end, stepped in pieces of 1, 2, 3, ... frames."""
    seq = np.ascontiguousarray(patches[:n_patches].reshape(1, -1, patches.shape[-1]))
    ref = den.predict_batch(seq)[0]
    state, outs, i, k = engine.initial_state(1), [], 0, 1
    while i < seq.shape[1]:
        y, state = engine.step(seq[:, i : i + k], state)
        outs.append(y[0])
        i, k = i + k, k % 5 + 1
    got = np.concatenate(outs)
    return float(np.max(np.abs(got.astype(np.float64) - ref))) if got.shape == ref.shape else float("inf")


# ------------------------------------------------------------------ parity data
def parity_patches(den, *, audio: str | Path | None = None, n: int = 1024) -> tuple[np.ndarray, str]:
    """Up to ``n`` real, normalised model inputs for the parity check, and where they come from.

    Parameters
    ----------
    den : speech_dae.inference.Denoiser
        The run (its ``info``, normaliser, feature extractor and patch framing).
    audio : str or Path, optional
        A recording: its features are normalised and cut into patches as
        :meth:`Denoiser.predict_frames` does. Default: the patches of the run's
        dataset (``run.json`` ``"dataset"``, written by stage 02), first split
        of test / val / train that has any.
    n : int
        Patches to return at most (evenly spaced over what is available).

    Returns
    -------
    patches : np.ndarray [shape=(n_patches, context, n_bins)], float32
    source : str
        For the report, e.g. ``"test split of datasets/fbank"``.

    Raises
    ------
    ConfigError
        If no ``audio`` is given and the run's dataset is gone or does not fit
        the model (the message says to pass ``--audio FILE``).
    AudioError
        If ``audio`` cannot be read or is too short.
    """
    shape = (den.context, den.fx.n_bins)
    if audio is None:
        patches, source = _dataset_patches(den, shape, n)
    else:
        patches, source = _audio_patches(den, Path(audio)), f"features of {audio}"
    if len(patches) > n:
        patches = patches[even_indices(len(patches), n)]
    return np.ascontiguousarray(patches, dtype=np.float32), source


def _dataset_patches(den, shape: tuple[int, int], n: int) -> tuple[np.ndarray, str]:
    dataset = den.info.dataset
    why = "run.json names no dataset" if not dataset else f"its dataset {dataset} is gone"
    for split in _PARITY_SPLITS if dataset else ():
        xf, wf = Path(dataset) / f"x_{split}.npy", Path(dataset) / f"windows_{split}.npy"
        if not (xf.is_file() and wf.is_file()):
            continue
        x, windows = np.load(xf, mmap_mode="r"), np.load(wf, mmap_mode="r")
        if x.ndim != 2 or x.shape[1] != shape[1]:
            why = f"its dataset {dataset} holds {x.shape[1:]} frames, not {shape[1]} bins"
            break
        windows = np.asarray(windows[windows + shape[0] <= x.shape[0]])
        if len(windows):
            take = windows[even_indices(len(windows), n)]
            return gather_patches(x, np.sort(take), shape[0]), f"{split} split of {dataset}"
    raise ConfigError(
        f"no real features to check the export against: {why}; pass --audio FILE "
        "(a recording at any rate; its features are used)"
    )


def _audio_patches(den, path: Path) -> np.ndarray:
    y, _ = load_audio(path, sample_rate=den.sample_rate)
    y = validate_audio(
        y, sample_rate=den.sample_rate, min_duration_s=den.fx.cfg.n_fft / den.sample_rate, name=str(path)
    )
    return den.patches(den.fx(y))[0]


# ------------------------------------------------------------------ the command
def _best_time(fn, repeats: int = 3) -> float:
    fn()  # warm-up (graph tracing, allocations)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _move(src: Path, dst: Path) -> None:
    """Rename ``src`` onto ``dst``, replacing a file or a whole folder."""
    if dst.is_dir():
        trash = dst.with_name(f".{dst.name}.old")
        if trash.exists():
            _remove(trash)
        os.replace(dst, trash)
        os.replace(src, dst)
        _remove(trash)
    else:
        os.replace(src, dst)


@dataclass
class ExportSummary:
    """What :func:`export_run` wrote and measured (times in seconds, size in bytes)."""

    run_dir: Path
    fmt: str
    path: Path
    size_bytes: int
    export_s: float
    max_abs_diff: float
    n_patches: int
    source: str
    keras_s: float
    engine_s: float
    ok: bool

    def lines(self) -> list[str]:
        speed = self.keras_s / self.engine_s if self.engine_s else float("nan")
        out = [
            f"exported {self.run_dir} to {self.path} ({self.size_bytes / 1e6:.2f} MB) in {self.export_s:.1f} s",
            f"parity on {self.n_patches} real patches ({self.source}): max |exported - keras| = "
            f"{self.max_abs_diff:.2e} ({'<' if self.ok else 'NOT <'} {PARITY_TOL:g}: "
            f"{'passed' if self.ok else 'FAILED'})",
            f"one forward pass of {self.n_patches} patches: keras {1000 * self.keras_s:.1f} ms, "
            f"{self.fmt} {1000 * self.engine_s:.1f} ms ({speed:.1f}x)",
        ]
        if self.ok and self.fmt == "onnx":
            out.append(f"next: speech-dae denoise IN -o OUT --model {self.run_dir} --engine onnx")
        return out


def export_run(
    run_dir: str | Path, fmt: str, *, audio: str | Path | None = None, n_patches: int = 1024, repeats: int = 3
) -> ExportSummary:
    """Export a stage-03 run and check it against Keras on real features.

    Parameters
    ----------
    run_dir : str or Path
        ``models/<run>/`` (``model.keras``, ``run.json``, ``norm.npz``).
    fmt : {"onnx", "tflite", "savedmodel"}
    audio : str or Path, optional
        Recording whose features are the parity patches (default: the run's dataset).
    n_patches : int
        Patches of the parity check, all in one batched forward pass (also timed).
    repeats : int
        Timed forward passes per engine (best of), after one warm-up.

    Returns
    -------
    ExportSummary
        ``path`` is ``run_dir / FORMATS[fmt]`` when ``ok``, else ``run_dir / failed_name(fmt)``
        (check ``ok``: a failed parity check returns normally, the caller decides).

    Raises
    ------
    ConfigError
        For an unknown format, or when there are no real features (no dataset, no ``audio``).
    ArtifactError
        If the run is incomplete (names stage 03) or the converter fails on this model.
    AudioError
        If ``audio`` cannot be used.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if n_patches < 1:
        raise ConfigError(f"--patches must be >= 1, got {n_patches}")
    den = Denoiser(run_dir, engine="keras")
    patches, source = parity_patches(den, audio=audio, n=n_patches)
    # ONNX: the frame step of a causal model (_export_onnx), or the free-length graph of a sequence model;
    # other formats (and patch models) the trained fixed-patch graph
    if fmt == "onnx" and den.sequence is not None:
        model = den.model
    else:
        model = den.trained_model
    final = den.run_dir / FORMATS[fmt]
    stem, _, suffix = FORMATS[fmt].partition(".")
    tmp = den.run_dir / f".{stem}.tmp-{os.getpid()}{'.' + suffix if suffix else ''}"
    _remove(tmp)
    try:
        t0 = time.perf_counter()
        if fmt == "onnx":
            _export_onnx(den, model, tmp)
        else:
            export_model(model, tmp, fmt)
        export_s = time.perf_counter() - t0
        engine = load_runtime(tmp, fmt, input_shape=(den.context, den.fx.n_bins))
        got = np.asarray(engine(patches), dtype=np.float32)
        ref = den.predict_batch(patches)
        # NaN anywhere (or another shape) fails the check: nan < tol is False
        diff = float(np.max(np.abs(got.astype(np.float64) - ref))) if got.shape == ref.shape else float("inf")
        if fmt == "onnx" and den.stateful:  # the step, fed in pieces with its state, against one Keras call
            diff = max(diff, _stream_diff(engine, den, patches))
        keras_s = _best_time(lambda: den.model(patches, training=False), repeats)
        engine_s = _best_time(lambda: engine(patches), repeats)
        engine = None  # release the file before it is moved
        ok = bool(diff < PARITY_TOL)
        dest = final if ok else den.run_dir / failed_name(fmt)
        _move(tmp, dest)
        if ok:
            _remove(den.run_dir / failed_name(fmt))  # a rejected export of an earlier attempt
    finally:
        with contextlib.suppress(OSError):
            _remove(tmp)
    return ExportSummary(
        den.run_dir, fmt, dest, _size(dest), export_s, diff, len(patches), source, keras_s, engine_s, ok
    )
