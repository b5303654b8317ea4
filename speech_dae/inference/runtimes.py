"""Runtimes of exported models: onnxruntime, the TFLite interpreter and a TensorFlow SavedModel.

Each is a callable ``runtime(x) -> y`` on ``(batch, context, n_bins)`` float32
arrays, like the Keras model (``training`` is accepted and ignored), so the
inference engine runs every format the same way. :class:`OnnxEngine` needs
only onnxruntime: this module imports neither TensorFlow nor Keras until a
TFLite or SavedModel runtime is asked for.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import ArtifactError, ConfigError

__all__ = [
    "FORMATS",
    "META_PAST",
    "META_FUTURE",
    "META_SHA256",
    "OnnxEngine",
    "TFLiteRuntime",
    "SavedModelRuntime",
    "load_runtime",
]

#: Metadata keys of ``model.onnx``: the sequence context in frames, and the exported ``model.keras``'s SHA-256.
META_PAST, META_FUTURE, META_SHA256 = "speech_dae.past", "speech_dae.future", "speech_dae.keras_sha256"
#: ``--format`` -> name of the exported file or folder inside the run folder.
FORMATS: dict[str, str] = {"onnx": "model.onnx", "tflite": "model.tflite", "savedmodel": "saved_model"}


# ------------------------------------------------------------------ engines
class OnnxEngine:
    """``model.onnx`` in an onnxruntime session (CPU), callable like the Keras model.

    Three kinds of graph, told apart by the file itself: a patch model (input ``(batch,
    context, n_bins)``), a sequence model (input ``(batch, T, n_bins)`` with a free ``T``), or the
    stateful frame step of a causal model (input ``frames`` ``(batch, T, n_bins)`` plus one
    ``state{i}`` per dilated block; outputs the frames and the new states). A sequence or step
    export carries its context in the file's metadata (:data:`META_PAST`, :data:`META_FUTURE`).

    Parameters
    ----------
    path : str or Path
        An ONNX file written by :func:`speech_dae.inference.export.export_run`.
    input_shape : (context, n_bins), optional
        Checked against the file's input (only ``n_bins`` for a free frame axis); a mismatch raises.
    threads : int
        onnxruntime intra-op threads (0: its default, one per core).

    Attributes
    ----------
    sequence : (int, int) or None
        ``(past, future)`` frames of context of a sequence or step graph; None for a patch graph.
    state_shapes : list of (int, int)
        ``(frames, channels)`` of each state input (empty unless a step graph).
    keras_sha256 : str
        SHA-256 of the ``model.keras`` it was exported from ("" if not recorded).

    Raises
    ------
    ConfigError
        If onnxruntime is not installed.
    ArtifactError
        If the file cannot be loaded, or takes another patch shape than ``input_shape``.
    """

    def __init__(self, path: str | Path, *, input_shape: tuple[int, int] | None = None, threads: int = 0):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError("the onnx engine needs onnxruntime: pip install onnxruntime") from None
        self.path = Path(path)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only
        opts.intra_op_num_threads = int(threads)
        # no busy-waiting threads after each call: they would take the CPU from the feature code between calls
        # (measured on 2 cores: fbank_type2 whole-file denoising 0.44 s with spinning, 0.29 s without)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise ArtifactError(
                f"{self.path} cannot be loaded by onnxruntime ({str(exc).strip()[:200]}); "
                "re-run speech-dae export --format onnx"
            ) from None
        inputs = self.session.get_inputs()
        self.input_name = inputs[0].name
        self.state_names = [i.name for i in inputs[1:]]
        self.state_shapes = [(int(i.shape[1]), int(i.shape[2])) for i in inputs[1:]]
        meta = self.session.get_modelmeta().custom_metadata_map
        self.keras_sha256 = meta.get(META_SHA256, "")
        shape = tuple(inputs[0].shape[1:])
        free = not isinstance(shape[0], int)
        self.sequence = (int(meta.get(META_PAST, 0)), int(meta.get(META_FUTURE, 0))) if free else None
        want = None if input_shape is None else tuple(int(d) for d in input_shape)
        if want is not None and (shape[1:] != want[1:] if free else shape != want):
            raise ArtifactError(
                f"{self.path} takes patches of shape {shape}, but run.json says "
                f"{want}; re-run speech-dae export --format onnx"
            )

    def initial_state(self, batch: int = 1) -> list[np.ndarray]:
        """Zero states for ``batch`` streams (the causal zero padding of a sequence's start)."""
        return [np.zeros((int(batch), f, c), np.float32) for f, c in self.state_shapes]

    def step(self, x: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Stateful frame step: ``(batch, T, n_bins)`` new frames (``T >= 1``) and the state -> outputs, new state."""
        feed = {self.input_name: np.ascontiguousarray(x, dtype=np.float32), **dict(zip(self.state_names, state))}
        out = self.session.run(None, feed)
        return out[0], out[1:]

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Forward pass: ``(batch, *input_shape)`` float32 -> same shape, float32 (``training`` is ignored).

        A step graph starts from zero state, i.e. it runs the whole sequence as one call would.
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.state_names:
            return self.step(x, self.initial_state(x.shape[0]))[0]
        return self.session.run(None, {self.input_name: x})[0]


class TFLiteRuntime:
    """``model.tflite`` in a TFLite interpreter; the batch axis is resized to each call's batch."""

    def __init__(self, path: Path):
        with warnings.catch_warnings():  # tf.lite.Interpreter is deprecated in favour of ai_edge_litert
            warnings.simplefilter("ignore")
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError:
                import tensorflow as tf

                Interpreter = tf.lite.Interpreter
            self.interpreter = Interpreter(model_path=str(path))
        self.inp = self.interpreter.get_input_details()[0]["index"]
        self.out = self.interpreter.get_output_details()[0]["index"]
        self.shape: tuple | None = None

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape != self.shape:
            self.interpreter.resize_tensor_input(self.inp, x.shape)
            self.interpreter.allocate_tensors()
            self.shape = x.shape
        self.interpreter.set_tensor(self.inp, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.out).copy()


class SavedModelRuntime:
    """``saved_model/`` loaded with ``tf.saved_model.load``; calls its ``serve`` endpoint."""

    def __init__(self, path: Path):
        import tensorflow as tf

        self.loaded = tf.saved_model.load(str(path))  # keep a reference: serve() needs its variables alive
        self.fn = self.loaded.serve

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return np.asarray(self.fn(np.ascontiguousarray(x, dtype=np.float32)))


def load_runtime(path: str | Path, fmt: str, *, input_shape: tuple[int, int] | None = None):
    """A callable ``f(x) -> y`` running an exported model.

    Parameters
    ----------
    path : str or Path
        ``model.onnx``, ``model.tflite`` or ``saved_model/``.
    fmt : {"onnx", "tflite", "savedmodel"}
    input_shape : (context, n_bins), optional
        ONNX only: checked against the file.

    Returns
    -------
    callable
        ``(batch, *input_shape)`` float32 ndarray -> ndarray of the same shape, float32.
    """
    if fmt == "onnx":
        return OnnxEngine(path, input_shape=input_shape)
    if fmt == "tflite":
        return TFLiteRuntime(Path(path))
    if fmt == "savedmodel":
        return SavedModelRuntime(Path(path))
    raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
