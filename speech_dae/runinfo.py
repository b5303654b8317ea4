"""The typed record of ``models/<run>/run.json``: written by training, read by everything else.

:class:`RunInfo` is the one schema of a run folder's ``run.json``. Stage 03
builds it and writes it with :meth:`RunInfo.save`; the inference engine,
export, stages 04-06 and the benchmarks read it with :meth:`RunInfo.load`
and use attributes, not string keys. Every file carries
:data:`SCHEMA_VERSION`: a ``run.json`` without it (written before the schema
existed), with another version, or with keys this version does not know is
refused with one line that says to retrain.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import STAGE03, write_json
from .errors import ArtifactError

__all__ = ["RunInfo", "SCHEMA_VERSION", "RUN_JSON"]

#: Version of the ``run.json`` layout; bump it when a field changes meaning or is removed.
SCHEMA_VERSION = 1
#: File name of the record inside a run folder.
RUN_JSON = "run.json"


@dataclass
class RunInfo:
    """Everything recorded about a trained run (one ``run.json``).

    Attributes
    ----------
    model : str
        Registry name (:func:`speech_dae.models.build_model`), or ``"identity"`` for test runs.
    feature : str
        Feature type (``fbank``, ``logmag``, ..., ``waveform``).
    sample_rate : int
        Hz, the rate the model works at.
    features : dict
        The ``features`` config section the frames were computed with (n_fft, hop_length, ...):
        the forward transform and its inverse use the same framing.
    context : int
        Frames per patch (samples per chunk for ``waveform``).
    n_bins : int
        Values per frame.
    target : str
        ``mapping`` or ``mask``.
    patch_hop : int
        Frames between inference patches the run was validated with (``reconstruct.patch_hop`` of its
        training config: the hop of stage 03's validation denoising). Every inference path (stages 04 and
        05, ``speech-dae denoise``, streaming, export checks) uses it unless told otherwise. Ignored for
        waveform runs (their chunks overlap by half).
    schema_version : int
        :data:`SCHEMA_VERSION` of the writer.
    history : dict
        Keras history: ``{"loss": [...], "val_loss": [...], ...}`` per epoch.
    features_dir, dataset : str
        The stage-01 and stage-02 folders the run was trained from ("" when unknown).

    The remaining attributes record how the run was trained (hyper-parameters,
    loss, optimizer, epochs, timings in seconds, patch counts, versions).
    """

    model: str
    feature: str
    sample_rate: int
    features: dict
    context: int
    n_bins: int
    target: str = "mapping"
    patch_hop: int = 1
    schema_version: int = SCHEMA_VERSION
    stage: str = "03_train_autoencoder"
    fingerprint: str = ""
    run: str = ""
    hparams: dict = field(default_factory=dict)
    input_shape: list = field(default_factory=list)
    loss: str = "mse"
    loss_weights: list = field(default_factory=list)
    optimizer: dict = field(default_factory=dict)
    mixing: str = "fixed"
    training: dict = field(default_factory=dict)
    epochs_run: int = 0
    best_epoch: int = 0
    best_val_loss: float | None = None
    stop_reason: str = ""
    train_seconds: float = 0.0
    resumed_at_epochs: list = field(default_factory=list)
    epoch_seconds: list = field(default_factory=list)
    train_patches: int = 0
    val_patches: int = 0
    val_frames: int = 0
    val_minutes: float = 0.0
    semi_supervised: bool = False
    keras_backend: str = ""
    replicas: int = 1
    cluster_task: str | None = None
    n_params: int = 0
    history: dict = field(default_factory=dict)
    dataset: str = ""
    dataset_fingerprint: str = ""
    features_dir: str = ""
    seed: int = 0
    versions: dict = field(default_factory=dict)

    @property
    def waveform(self) -> bool:
        """Whether the model works on raw samples (``feature == "waveform"``)."""
        return self.feature == "waveform"

    def to_dict(self) -> dict[str, Any]:
        """The ``run.json`` content (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = RUN_JSON) -> RunInfo:
        """Check and convert a parsed ``run.json``.

        Raises
        ------
        ArtifactError
            If ``data`` is not an object, has no or another ``schema_version``, misses a
            required key or holds keys this version does not know (the message names
            ``source`` and says to retrain with stage 03).
        """
        retrain = f"retrain it with {STAGE03} --force"
        if not isinstance(data, dict):
            raise ArtifactError(f"{source} is not a speech-dae run record (not a JSON object); {retrain}")
        version = data.get("schema_version")
        if version is None:
            raise ArtifactError(
                f"{source} has no schema_version: it was written by an older speech-dae or is not a speech-dae "
                f"run; {retrain}"
            )
        if version != SCHEMA_VERSION:
            raise ArtifactError(
                f"{source} has schema_version {version!r}, this speech-dae reads {SCHEMA_VERSION}; {retrain} "
                "(or use the speech-dae version that wrote it)"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        missing = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING and f.name not in data]  # fmt: skip
        if unknown or missing:
            what = "; ".join(
                p for p in (f"unknown key(s) {', '.join(unknown)}" if unknown else "",
                            f"missing key(s) {', '.join(missing)}" if missing else "") if p
            )  # fmt: skip
            raise ArtifactError(f"{source} is not a run record of this speech-dae ({what}); {retrain}")
        return cls(**data)

    @classmethod
    def load(cls, run_dir: str | Path) -> RunInfo:
        """Read ``run_dir/run.json``.

        Raises
        ------
        ArtifactError
            If the file is missing or not valid JSON (names stage 03), or not a record of
            this schema (see :meth:`from_dict`).
        """
        path = Path(run_dir) / RUN_JSON
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ArtifactError(f"{path} is missing; run {STAGE03} first") from None
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{path} cannot be read ({exc}); retrain with {STAGE03} --force") from None
        return cls.from_dict(data, source=str(path))

    def save(self, run_dir: str | Path) -> Path:
        """Write ``run_dir/run.json`` atomically; returns its path."""
        path = Path(run_dir) / RUN_JSON
        write_json(path, self.to_dict())
        return path
