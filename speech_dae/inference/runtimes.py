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

__all__ = ["FORMATS", "OnnxEngine", "TFLiteRuntime", "SavedModelRuntime", "load_runtime"]

#: ``--format`` -> name of the exported file or folder inside the run folder.
FORMATS: dict[str, str] = {"onnx": "model.onnx", "tflite": "model.tflite", "savedmodel": "saved_model"}


# ------------------------------------------------------------------ engines
class OnnxEngine:
    """``model.onnx`` in an onnxruntime session (CPU), callable like the Keras model.

    Parameters
    ----------
    path : str or Path
        An ONNX file written by :func:`speech_dae.inference.export.export_model`.
    input_shape : (context, n_bins), optional
        Checked against the file's input; a mismatch raises.

    Raises
    ------
    ConfigError
        If onnxruntime is not installed.
    ArtifactError
        If the file cannot be loaded, or takes another patch shape than ``input_shape``.
    """

    def __init__(self, path: str | Path, *, input_shape: tuple[int, int] | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError("the onnx engine needs onnxruntime: pip install onnxruntime") from None
        self.path = Path(path)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only
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
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = tuple(inp.shape[1:])
        if input_shape is not None and shape != tuple(int(d) for d in input_shape):
            raise ArtifactError(
                f"{self.path} takes patches of shape {shape}, but run.json says "
                f"{tuple(input_shape)}; re-run speech-dae export --format onnx"
            )

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Forward pass: ``(batch, *input_shape)`` float32 -> same shape, float32 (``training`` is ignored)."""
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]


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
