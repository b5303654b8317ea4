"""Stage 01: mix clean speech with noise, extract features, write ``features/<name>/``.

Output contract (see the README):

- ``params.json``: sample rate, feature parameters, SNR list, seed, inputs, counts, versions, fingerprint
- ``manifest.csv``: one row per utterance (id, split, speaker, clean_file, noise_file, snr_db, gain,
  n_samples, n_frames, kind); ``kind`` is ``mixture`` (clean + noise mixed here), ``paired`` (given noisy
  file with its clean pair), ``noisy`` (a noisy recording without a clean reference: its "clean" features are
  its own, for the semi-supervised models only) or ``noise_only`` (a noise-only recording, soft label 1)
- ``skipped.csv``: every input file that could not be used, with the reason
- ``noisy/<id>.npy``, ``clean/<id>.npy``: float32 features, shape (n_frames, n_bins)
- ``mixtures/<id>.wav``: the noisy audio that was featurised (float WAV)
- ``references/<id>.wav``: its clean component (same gain as the mixture), for scoring; absent for the
  ``noisy`` and ``noise_only`` kinds
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from . import __version__
from .artifacts import StagedOutput, fingerprint, package_versions, save_npy, write_csv, write_json
from .audio import file_stat_key, list_audio, load_audio, validate_audio, write_audio
from .config import Config
from .errors import AudioError, ConfigError
from .features import FeatureExtractor
from .mixing import mix_at_snr, seeded_rng, snr_db_of, split_items

__all__ = ["ExtractSummary", "extract_features", "MANIFEST_FIELDS", "SPLITS"]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
MANIFEST_FIELDS = ("id", "split", "speaker", "clean_file", "noise_file", "snr_db", "gain", "n_samples", "n_frames",
                   "kind")
#: Manifest kinds without a clean reference.
UNREFERENCED_KINDS = ("noisy", "noise_only")
SKIPPED_FIELDS = ("file", "reason")


@dataclass
class ExtractSummary:
    out: Path
    counts: dict = field(default_factory=dict)
    skipped: int = 0
    seconds: float = 0.0
    up_to_date: bool = False
    audio_s: float = 0.0

    def lines(self) -> list[str]:
        if self.up_to_date:
            return [f"{self.out} is up to date (same inputs and parameters); pass --force to rebuild"]
        parts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        rt = self.audio_s / self.seconds if self.seconds else 0.0
        return [f"wrote {sum(self.counts.values())} utterances to {self.out} ({parts}); "
                f"skipped {self.skipped} input file(s){' (see skipped.csv)' if self.skipped else ''}; "
                f"{self.audio_s / 60:.1f} min of audio in {self.seconds:.1f} s ({rt:.0f}x real time)"]


@dataclass(frozen=True)
class _Job:
    split: str
    clean: Path | None  # None for the noisy and noise_only kinds
    clean_root: Path  # the root of the ids: the clean folder, or the noisy / noise-only folder
    noise: Path | None  # None in paired mode (the "clean" of the pair is the reference, "noisy" given)
    snr_db: float | None
    noisy: Path | None = None  # the given recording for the paired, noisy and noise_only kinds
    kind: str = "mixture"


def _stem_id(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    return "-".join(rel.parts)


def _speaker(path: Path, root: Path) -> str:
    stem = path.stem
    if "__" in stem:
        return stem.split("__", 1)[0]
    rel = path.relative_to(root)
    return rel.parts[0] if len(rel.parts) > 1 else "unknown"


def _plan_mixed(cfg: Config, sources: dict[str, tuple[list[Path], list[Path], Path]], usable) -> list[_Job]:
    jobs = []
    for split, (cleans, noises, root) in sources.items():
        noises = [n for n in noises if usable(n)]
        if not noises:
            raise AudioError(f"no usable noise recording for the {split} split (see the reasons above or in "
                             "skipped.csv); add WAV/FLAC/OGG noise files")
        for c in cleans:
            for snr in cfg.mixing.snr_db:
                noise = noises[int(seeded_rng(cfg.seed, "noise", str(c.relative_to(root)), snr).integers(len(noises)))]
                jobs.append(_Job(split, c, root, noise, snr))
    return jobs


def _unreferenced_jobs(cfg: Config, folder: Path, kind: str) -> list[_Job]:
    """Train / val jobs for every recording under ``folder`` (no clean reference, no test split)."""
    groups = split_items(list_audio(folder), [cfg.mixing.val_fraction], seed=cfg.seed, key=kind)
    return [_Job(split, None, folder, None, None, noisy=p, kind=kind) for split, g in zip(("train", "val"), groups)
            for p in g]


def _discover(cfg: Config, data, clean, noise, noisy, skipped: list, usable,
              noise_only=None) -> tuple[list[_Job], dict]:
    """Turn the input options into a list of jobs; returns (jobs, description of inputs)."""
    jobs, inputs = _discover_speech(cfg, data, clean, noise, noisy, skipped, usable, noise_only)
    if noise_only is not None:
        noise_only = Path(noise_only)
        if not noise_only.is_dir():
            raise ConfigError(f"--noise-only {noise_only} is not a folder of noise-only recordings")
        jobs += _unreferenced_jobs(cfg, noise_only, "noise_only")
        inputs = {**inputs, "noise_only": str(noise_only)}
    return jobs, inputs


def _discover_speech(cfg: Config, data, clean, noise, noisy, skipped: list, usable,
                     noise_only) -> tuple[list[_Job], dict]:
    m = cfg.mixing
    if noisy is not None and clean is None and noise is None:
        if noise_only is None:
            raise ConfigError("--noisy needs --clean (the clean references paired by relative path), or "
                              "--noise-only DIR to train the semi-supervised models (partitioned, curro) "
                              "without clean speech")
        if not Path(noisy).is_dir():
            raise ConfigError(f"--noisy {noisy} is not a folder")
        return _unreferenced_jobs(cfg, Path(noisy), "noisy"), {"mode": "noisy+noise_only", "noisy": str(noisy)}
    if data is not None:
        if clean or noise or noisy:
            raise ConfigError("--data cannot be combined with --clean/--noise/--noisy; give one input layout")
        data = Path(data)
        for sub in ("train/clean", "train/noise", "test/clean", "test/noise"):
            if not (data / sub).is_dir():
                raise ConfigError(f"--data {data}: missing folder {sub}/; a corpus needs "
                                  "train/clean, train/noise, test/clean, test/noise (see data_sample/)")
        tr_clean, va_clean = split_items(list_audio(data / "train/clean"), [m.val_fraction], seed=cfg.seed, key="clean")
        tr_noise, va_noise = split_items(list_audio(data / "train/noise"), [m.val_fraction], seed=cfg.seed, key="noise")
        roots = {"train": data / "train/clean", "val": data / "train/clean", "test": data / "test/clean"}
        sources = {"train": (tr_clean, tr_noise), "val": (va_clean, va_noise or tr_noise),
                   "test": (list_audio(data / "test/clean"), list_audio(data / "test/noise"))}
        if not va_noise:
            log.warning("train/noise has too few recordings to hold some out; validation reuses training noises")
        inputs = {"mode": "data", "data": str(data)}
    elif noisy is not None:
        if clean is None:
            raise ConfigError("--noisy needs --clean: the clean references paired by relative path")
        if noise is not None:
            raise ConfigError("--noisy cannot be combined with --noise; use --noisy DIR --clean DIR")
        noisy, clean = Path(noisy), Path(clean)
        noisy_files = list_audio(noisy)
        clean_by_rel = {p.relative_to(clean).with_suffix(""): p for p in list_audio(clean)}
        pairs = []
        for p in noisy_files:
            ref = clean_by_rel.get(p.relative_to(noisy).with_suffix(""))
            if ref is None:
                skipped.append({"file": str(p), "reason": f"unpaired: no clean file with relative path "
                                                          f"{p.relative_to(noisy).with_suffix('')} under {clean}"})
            else:
                pairs.append((p, ref))
        tr, va, te = split_items(pairs, [m.val_fraction, m.test_fraction], seed=cfg.seed, key="pairs")
        jobs = [_Job(split, c, clean, None, None, noisy=n, kind="paired")
                for split, group in zip(SPLITS, (tr, va, te)) for n, c in group]
        return jobs, {"mode": "paired", "noisy": str(noisy), "clean": str(clean)}
    elif clean is not None and noise is not None:
        clean, noise = Path(clean), Path(noise)
        c_groups = split_items(list_audio(clean), [m.val_fraction, m.test_fraction], seed=cfg.seed, key="clean")
        n_groups = split_items(list_audio(noise), [m.val_fraction, m.test_fraction], seed=cfg.seed, key="noise")
        if any(len(g) == 0 for g in n_groups):
            log.warning("%s has too few recordings to give each split its own; the splits share them", noise)
            n_groups = [list_audio(noise)] * 3
        roots = {s: clean for s in SPLITS}
        sources = dict(zip(SPLITS, zip(c_groups, n_groups)))
        inputs = {"mode": "clean+noise", "clean": str(clean), "noise": str(noise)}
    else:
        raise ConfigError("no input given: use --data DIR, or --clean DIR --noise DIR, or --noisy DIR --clean DIR")
    full = {s: (c, n, roots[s]) for s, (c, n) in sources.items() if c}
    return _plan_mixed(cfg, full, usable), inputs


def _input_fingerprint(cfg: Config, jobs: list[_Job], inputs: dict) -> str:
    files = sorted({str(p) + "|" + file_stat_key(p) for j in jobs for p in (j.clean, j.noise, j.noisy) if p})
    return fingerprint(__version__, inputs, cfg.seed, cfg.to_dict()["audio"], cfg.to_dict()["mixing"],
                       cfg.to_dict()["features"], files)


def _job_ids(jobs: list[_Job], inputs: dict) -> list[str]:
    """The utterance id of every job (known before any audio is read)."""
    ids = []
    for job in jobs:
        if job.kind in UNREFERENCED_KINDS:
            ids.append(("noise_only-" if job.kind == "noise_only" else "") + _stem_id(job.noisy, job.clean_root))
        elif job.noisy is None:
            ids.append(f"{_stem_id(job.clean, job.clean_root)}__{job.noise.stem}__snr{job.snr_db:+g}")
        else:
            ids.append(_stem_id(job.noisy, Path(inputs["noisy"])))
    return ids


def _n_workers(jobs) -> int:
    """Worker processes for ``jobs`` (0: one per available core); raises ConfigError below 0."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0:
        raise ConfigError(f"--jobs must be a number of worker processes (1 or more), or 0 for one per CPU core; "
                          f"got {jobs!r}")
    if jobs:
        return jobs
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _load(cfg: Config, path: Path, role: str, resampled: set) -> np.ndarray:
    """Read one input file at the configured rate and check it (``role``: clean, noise or noisy).

    The original rate of a resampled file is added to ``resampled``. Raises AudioError.
    """
    sr = cfg.audio.sample_rate
    y, info = load_audio(path, sample_rate=sr)
    if info.resampled:
        resampled.add(f"{info.orig_sample_rate}")
    silence = cfg.audio.silence_rms_db if role == "clean" else None
    min_dur = cfg.audio.min_duration_s if role == "clean" else cfg.features.win_length / sr
    return validate_audio(y, sample_rate=sr, min_duration_s=min_dur, silence_rms_db=silence, name=str(path))


def _write_utterance(work: Path, uid: str, x_noisy, x_clean, y_noisy, y_ref, sr: int) -> None:
    save_npy(work / "noisy" / f"{uid}.npy", x_noisy)
    save_npy(work / "clean" / f"{uid}.npy", x_clean)
    write_audio(work / "mixtures" / f"{uid}.wav", y_noisy, sr)
    if y_ref is not None:
        write_audio(work / "references" / f"{uid}.wav", y_ref, sr)


@dataclass
class _Result:
    """One job's outcome: its manifest ``row``, or a ``bad_file`` reason, or a ``skip`` row (this mixture only)."""

    row: dict | None = None
    arrays: tuple | None = None  # (x_noisy, x_clean, y_noisy, y_ref) when the job was not to write its files
    bad_file: str | None = None
    skip: dict | None = None
    resampled: set = field(default_factory=set)


class _Worker:
    """The per-utterance work of stage 01: load, mix, featurise and write one job.

    Runs in the calling process (one job at a time) or in each worker process of
    ``jobs > 1``. A job's result depends on the job alone (the noise offset is
    seeded by the utterance id), never on the process or the order.

    Parameters
    ----------
    cfg : Config
    work : Path
        The staging folder the utterance files go to.
    noises : dict, optional
        Noise recordings already loaded (path -> samples); others are loaded on first use.
    """

    def __init__(self, cfg: Config, work: Path, noises: dict | None = None):
        self.cfg, self.work = cfg, work
        self.fx = FeatureExtractor(cfg.features, cfg.audio.sample_rate)
        self.noises = {} if noises is None else noises
        self.clean: tuple[Path | None, np.ndarray | None] = (None, None)  # the last clean file (one per SNR)

    def __call__(self, task: tuple[_Job, str, bool]) -> _Result:
        """Run ``(job, uid, write)``; with ``write`` false the arrays come back instead of being written."""
        job, uid, write = task
        cfg, sr, res = self.cfg, self.cfg.audio.sample_rate, _Result()
        try:
            if job.clean is not None and self.clean[0] != job.clean:
                self.clean = (job.clean, _load(cfg, job.clean, "clean", res.resampled))
            y_clean = self.clean[1]
            if job.kind in UNREFERENCED_KINDS:
                noise_path = job.noisy
                y_noisy = _load(cfg, job.noisy, "noisy", res.resampled)
                if not np.any(y_noisy):
                    raise AudioError(f"{job.noisy}: recording is all zeros (silent)")
                y_ref, gain, snr = None, 1.0, None
            elif job.noisy is None:
                noise_path = job.noise
                if noise_path not in self.noises:
                    self.noises[noise_path] = _load(cfg, noise_path, "noise", res.resampled)
                rng = seeded_rng(cfg.seed, "offset", uid)
                try:
                    mix = mix_at_snr(y_clean, self.noises[noise_path], job.snr_db, rng=rng,
                                     clip_peak=cfg.mixing.clip_peak)
                except AudioError as exc:  # the noise's fault: skip this mixture only, keep the clean file
                    res.skip = {"file": str(noise_path), "reason": f"cannot mix with {job.clean.name}: {exc}"}
                    return res
                y_noisy, y_ref, gain, snr = mix.noisy, mix.clean, mix.gain, job.snr_db
            else:
                noise_path = job.noisy
                y_noisy = _load(cfg, job.noisy, "noisy", res.resampled)
                if abs(y_noisy.size - y_clean.size) > 0.01 * max(y_noisy.size, y_clean.size):
                    raise AudioError(f"{job.noisy}: length {y_noisy.size} differs from its clean pair "
                                     f"{job.clean} ({y_clean.size} samples) by more than 1%")
                n = min(y_noisy.size, y_clean.size)
                y_noisy, y_ref, gain = y_noisy[:n], y_clean[:n], 1.0
                snr = snr_db_of(y_ref, y_noisy - y_ref)
        except AudioError as exc:
            res.bad_file = str(exc)
            return res
        x_noisy = self.fx(y_noisy)
        x_clean = x_noisy if y_ref is None else self.fx(y_ref)
        if write:
            _write_utterance(self.work, uid, x_noisy, x_clean, y_noisy, y_ref, sr)
        else:
            res.arrays = (x_noisy, x_clean, y_noisy, y_ref)
        res.row = {"id": uid, "split": job.split, "speaker": _speaker(job.clean or job.noisy, job.clean_root),
                   "clean_file": str(job.clean or ""), "noise_file": str(noise_path),
                   "snr_db": "" if snr is None else round(float(snr), 3), "gain": round(gain, 6),
                   "n_samples": y_noisy.size, "n_frames": x_noisy.shape[0], "kind": job.kind}
        return res


_WORKER: _Worker | None = None  # the worker of a worker process


def _init_worker(cfg: Config, work: Path) -> None:
    global _WORKER
    threadpool_limits(1, user_api="blas")  # see extract_features
    _WORKER = _Worker(cfg, work)


def _run_job(task: tuple[_Job, str, bool]) -> _Result:
    return _WORKER(task)


def extract_features(cfg: Config, *, out: str | Path, data=None, clean=None, noise=None, noisy=None,
                     noise_only=None, force: bool = False, progress: bool = True, jobs: int = 1) -> ExtractSummary:
    """Run stage 01: mix, featurise and write the ``features/<name>/`` contract.

    Parameters
    ----------
    cfg : Config
    out : str or Path
        Output folder, e.g. ``features/logmag``.
    data : path, optional
        A corpus with ``train/{clean,noise}`` and ``test/{clean,noise}`` (like ``data_sample/``).
    clean, noise : path, optional
        Clean speech and noise folders, split into train/val/test by utterance and by recording.
    noisy : path, optional
        With ``clean``: already-noisy recordings paired with clean ones by relative path.
        With ``noise_only`` and no ``clean``: noisy recordings without references
        (train / val only), for the semi-supervised models.
    noise_only : path, optional
        Noise-only recordings, added to any layout as ``noise_only`` utterances
        (soft label 1; train / val only, split by recording).
    force : bool
        Rebuild even when ``out`` is up to date, or holds another configuration.
    jobs : int
        Worker processes for the per-utterance work (load, mix, features, writing); 0 = one per CPU core.
        The output is the same whatever ``jobs`` (byte for byte, but for the timing in ``params.json``),
        and so is the fingerprint.

    Returns
    -------
    ExtractSummary

    Raises
    ------
    ConfigError
        On contradictory or missing input options, or ``jobs`` < 0.
    AudioError
        When no usable clean file or no usable noise file is left.
    ArtifactError
        When ``out`` holds another configuration and ``force`` is false.
    """
    t0 = time.perf_counter()
    n_workers = _n_workers(jobs)
    skipped: list[dict] = []
    sr = cfg.audio.sample_rate
    fx = FeatureExtractor(cfg.features, sr)
    noise_cache: dict[Path, np.ndarray] = {}
    resampled: set[str] = set()

    def usable_noise(path: Path) -> bool:
        if path in noise_cache:
            return True
        try:
            y = _load(cfg, path, "noise", resampled)
            if not np.any(y):
                raise AudioError(f"{path}: noise recording is all zeros (silent)")
        except AudioError as exc:
            if not any(r["file"] == str(path) for r in skipped):
                skipped.append({"file": str(path), "reason": str(exc)})
            return False
        noise_cache[path] = y
        return True

    plan, inputs = _discover(cfg, data, clean, noise, noisy, skipped, usable_noise, noise_only)
    if not plan:
        raise AudioError(f"no usable input files found in {inputs if isinstance(inputs, dict) else ''}"
                         f"{'' if not skipped else f' ({len(skipped)} skipped, first: {skipped[0]}'}; "
                         "check the folders hold WAV/FLAC/OGG audio")
    fp = _input_fingerprint(cfg, plan, inputs)
    staged = StagedOutput(out, fp, marker="params.json", force=force)
    if staged.is_current():
        return ExtractSummary(Path(out), up_to_date=True)
    work = staged.begin()
    ids = _job_ids(plan, inputs)
    id_counts = Counter(ids)
    # a job whose id another job shares sends its arrays back: only the first that succeeds is written
    tasks = [(job, uid, id_counts[uid] == 1) for job, uid in zip(plan, ids)]
    n_workers = min(n_workers, len(tasks))
    rows: list[dict] = []
    bad_files: dict[str, str] = {}
    seen_ids: set[str] = set()
    audio_s = 0.0
    # One BLAS thread per process: the features' small matrix products gain nothing from more, and OpenBLAS's
    # idle threads spun for 2.6x the CPU time on the corpus (same results, byte for byte).
    blas, pool = threadpool_limits(1, user_api="blas"), None
    try:
        if n_workers == 1:
            results = map(_Worker(cfg, work, noise_cache), tasks)
        else:  # in chunks of one clean file's SNRs: the worker that gets them loads the file once
            pool = ProcessPoolExecutor(n_workers, mp_context=get_context("spawn"), initializer=_init_worker,
                                       initargs=(cfg, work))
            results = pool.map(_run_job, tasks, chunksize=len(cfg.mixing.snr_db))
        for (job, uid, _), res in zip(tasks, tqdm(results, total=len(tasks), desc="01 extract", unit="utt",
                                                  disable=not progress)):
            resampled |= res.resampled
            src = job.noisy or job.clean
            if str(src) in bad_files or str(job.clean) in bad_files:
                continue  # a file already found unusable (the job failed on it again)
            if res.bad_file is not None:
                bad_files.setdefault(str(src), res.bad_file)
                continue
            if res.skip is not None:
                skipped.append(res.skip)
                continue
            if uid in seen_ids:
                skipped.append({"file": str(src), "reason": f"duplicate id {uid}"})
                continue
            seen_ids.add(uid)
            if res.arrays is not None:
                _write_utterance(work, uid, *res.arrays, sr)
            audio_s += res.row["n_samples"] / sr
            rows.append(res.row)
    finally:
        blas.restore_original_limits()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    skipped.extend({"file": f, "reason": r} for f, r in bad_files.items())
    counts = {s: sum(r["split"] == s for r in rows) for s in SPLITS}
    speech = {s: sum(r["split"] == s and r["kind"] != "noise_only" for r in rows) for s in SPLITS}
    for split in ("train", "test"):
        if speech[split] == 0 and any(j.split == split and j.kind != "noise_only" for j in plan):
            raise AudioError(f"no usable {split} utterance is left ({len(skipped)} files skipped; first reason: "
                             f"{skipped[0]['reason'] if skipped else 'none'}); fix the inputs and re-run")
    if counts["train"] == 0:
        raise AudioError("no usable training utterance; check the inputs")
    if resampled:
        log.info("resampled inputs from %s Hz to %d Hz", ", ".join(sorted(resampled)), sr)
    write_csv(work / "manifest.csv", rows, MANIFEST_FIELDS)
    write_csv(work / "skipped.csv", skipped, SKIPPED_FIELDS)
    seconds = time.perf_counter() - t0
    write_json(work / "params.json", {
        "stage": "01_extract_features",
        "fingerprint": fp,
        "sample_rate": sr,
        "feature": cfg.features.type,
        "features": cfg.to_dict()["features"],
        "n_bins": fx.n_bins,
        "frame_rate_hz": float(sr) if cfg.features.type == "waveform" else sr / cfg.features.hop_length,
        "description": fx.describe(),
        "snr_db": list(cfg.mixing.snr_db),
        "mixing": cfg.to_dict()["mixing"],
        "audio": cfg.to_dict()["audio"],
        "seed": cfg.seed,
        "inputs": inputs,
        "counts": counts,
        "noise_only": sum(r["kind"] == "noise_only" for r in rows),
        "clean_references": not any(r["kind"] == "noisy" for r in rows),
        "skipped": len(skipped),
        "audio_minutes": round(audio_s / 60, 3),
        "seconds": round(seconds, 2),
        "versions": package_versions(),
    })
    staged.commit()
    return ExtractSummary(Path(out), counts=counts, skipped=len(skipped), seconds=seconds, audio_s=audio_s)


def load_params(features_dir: str | Path) -> dict:
    """Read and check ``features/<name>/params.json`` (raises ArtifactError naming stage 01)."""
    from .artifacts import read_json, require_files

    folder = require_files(features_dir, ["params.json", "manifest.csv"], stage_hint="01_extract_features.py")
    return read_json(Path(folder) / "params.json", stage_hint="01_extract_features.py")
