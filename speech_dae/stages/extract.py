"""Stage 01: mix clean speech with noise, extract features, write ``features/<name>/``.

Output contract (see the README):

- ``params.json``: sample rate, feature parameters, SNR list, seed, inputs, counts, versions, fingerprint
- ``manifest.csv``: one row per utterance (id, split, speaker, clean_file, noise_file, snr_db, gain,
  n_samples, n_frames, kind); ``kind`` is ``mixture`` (clean + noise mixed here), ``paired`` (given noisy
  file with its clean pair), ``noisy`` (a noisy recording without a clean reference: its "clean" features are
  its own, for the semi-supervised models only) or ``noise_only`` (a noise-only recording, soft label 1)
- ``skipped.csv``: every input file that could not be used, with the reason, and the channel files of
  one-file-per-channel noise recordings that were left out (reason ``not used: ...``)
- ``noisy/<id>.npy``, ``clean/<id>.npy``: float32 features, shape (n_frames, n_bins)
- ``mixtures/<id>.wav``: the noisy audio that was featurised (float WAV)
- ``references/<id>.wav``: its clean component (same gain as the mixture), for scoring; absent for the
  ``noisy`` and ``noise_only`` kinds
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..artifacts import SPLITS, StagedOutput, fingerprint, package_versions, save_npy, write_csv, write_json
from ..audio import file_stat_key, list_audio, load_audio, validate_audio, write_audio
from ..config import Config
from ..errors import AudioError, ConfigError
from ..features import FeatureExtractor
from ..mixing import hold_out_groups, mix_at_snr, seeded_rng, snr_db_of, split_items
from ..version import __version__

__all__ = [
    "ExtractSummary",
    "extract_features",
    "noise_files",
    "conversions",
    "conversions_line",
    "MANIFEST_FIELDS",
]

log = logging.getLogger(__name__)

MANIFEST_FIELDS = (
    "id",
    "split",
    "speaker",
    "clean_file",
    "noise_file",
    "snr_db",
    "gain",
    "n_samples",
    "n_frames",
    "kind",
)
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
    notes: list = field(default_factory=list)  # e.g. the one line of input conversions

    def lines(self) -> list[str]:
        if self.up_to_date:
            return [f"{self.out} is up to date (same inputs and parameters); pass --force to rebuild"]
        parts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        rt = self.audio_s / self.seconds if self.seconds else 0.0
        return [
            f"wrote {sum(self.counts.values())} utterances to {self.out} ({parts}); "
            f"skipped {self.skipped} input file(s){' (see skipped.csv)' if self.skipped else ''}; "
            f"{self.audio_s / 60:.1f} min of audio in {self.seconds:.1f} s ({rt:.0f}x real time)",
            *self.notes,
        ]


@dataclass(frozen=True)
class _Job:
    split: str
    clean: Path | None  # None for the noisy and noise_only kinds
    clean_root: Path  # the root of the ids: the clean folder, or the noisy / noise-only folder
    noise: Path | None  # None in paired mode (the "clean" of the pair is the reference, "noisy" given)
    snr_db: float | None
    noisy: Path | None = None  # the given recording for the paired, noisy and noise_only kinds
    kind: str = "mixture"
    noise_root: Path | None = None  # the noise folder (the noise's part of a mixture id is relative to it)


def _stem_id(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    return "-".join(rel.parts)


#: VoiceBank / VCTK-style utterance names: ``p232_001`` is speaker ``p232``
_SPEAKER_PREFIX = re.compile(r"^([A-Za-z]+\d+)_\d+$")

#: A validation split held out by speaker may hold at most this multiple of ``mixing.val_fraction`` of the
#: utterances; with fewer, bigger speakers it is cut by file from the training speakers instead.
VAL_SPEAKER_SLACK = 1.5


def speaker_of(path: Path, root: Path) -> str:
    """The speaker of a speech file, from the layout: ``SPEAKER__utt.wav``, ``SPEAKER/utt.wav``
    (first sub-folder under ``root``) or VoiceBank-style ``p232_001.wav``; ``unknown`` otherwise."""
    stem = path.stem
    if "__" in stem:
        return stem.split("__", 1)[0]
    rel = path.relative_to(root)
    if len(rel.parts) > 1:
        return rel.parts[0]
    m = _SPEAKER_PREFIX.match(stem)
    return m.group(1) if m else "unknown"


def split_by_speaker(
    items: list, speakers: list[str], fractions: dict[str, float], *, seed: int, key: str
) -> tuple[dict[str, list], dict]:
    """Cut ``items`` into ``train`` and the held-out splits of ``fractions``, keeping each speaker in one split.

    The test split (when asked for) takes whole speakers first, whatever their share, so that test scores
    are on voices training never heard. The validation split takes whole speakers from the rest when its
    share stays within :data:`VAL_SPEAKER_SLACK` x ``val_fraction``; otherwise it is cut by file from the
    training speakers (it only steers early stopping). With a single speaker every split is by file,
    exactly as :func:`speech_dae.mixing.split_items` cuts it, and a warning says so (no warning when the
    layout names no speaker at all, ``unknown``).

    Parameters
    ----------
    items : list
        Files or (noisy, clean) pairs.
    speakers : list of str
        The speaker of each item (:func:`speaker_of`).
    fractions : dict
        ``{"val": v}`` or ``{"val": v, "test": t}``: shares of all items.
    seed : int
    key : str
        Distinguishes independent splits made with the same seed.

    Returns
    -------
    groups : dict
        ``{"train": [...], "val": [...], ("test": [...])}``, each in the order of ``items``.
    rule : dict
        ``{"val": "speaker"|"file", ("test": ...), "speakers": {split: number of speakers}}``.
    """
    held_names = [s for s in ("val", "test") if s in fractions]
    n = len(items)
    if len(set(speakers)) < 2:
        if n and speakers[0] != "unknown":  # a layout without speakers has nothing to warn about
            log.warning("%s: one speaker (%s); the splits are by file", key, speakers[0])
        cut = split_items(items, [fractions[s] for s in held_names], seed=seed, key=key)
        groups = dict(zip(["train", *held_names], cut))
        rule = {s: "file" for s in held_names}
        rule["speakers"] = {s: int(bool(g)) for s, g in groups.items()}
        return groups, rule
    idx, spk = list(range(n)), list(speakers)
    chosen: dict[str, list[int]] = {}
    rule: dict = {}
    for split in ("test", "val"):
        if split not in fractions or fractions[split] <= 0:
            if split in fractions:
                chosen[split], rule[split] = [], "file"
            continue
        target = fractions[split] * n
        res = hold_out_groups(idx, spk, target, seed=seed, key=f"{key}/{split}")
        if res is not None and (split == "test" or len(res[1]) <= VAL_SPEAKER_SLACK * target):
            idx, chosen[split], rule[split] = res[0], res[1], "speaker"
        else:
            n_spk = len(set(spk))
            log.debug(  # the documented rule (recorded in params.json and summary.md), not a problem
                "%s: the %d remaining speaker(s) are too few to hold out %.0f%% of the utterances for %s by "
                "speaker; that split is cut by file",
                key,
                n_spk,
                100 * fractions[split],
                split,
            )
            if len(idx) == n:  # nothing held out yet: the same cut as a layout without speakers
                kept, held = split_items(idx, [fractions[split]], seed=seed, key=key)
            else:
                kept, held = split_items(idx, [min(target / len(idx), 0.9)], seed=seed, key=f"{key}/{split}")
            idx, chosen[split], rule[split] = kept, held, "file"
        spk = [speakers[i] for i in idx]
    chosen["train"] = idx
    groups = {s: [items[i] for i in sorted(chosen[s])] for s in ("train", *held_names)}
    rule["speakers"] = {s: len({speakers[i] for i in chosen[s]}) for s in groups}
    return groups, rule


#: ``ch01``, ``CH1``, ``DKITCHEN_ch01``, ``mic-ch16`` (not ``beach1``: "ch" starts the name or follows _ - . or a space)
_CHANNEL_FILE = re.compile(r"^(?:(.*)[_\-. ])?ch(\d{1,3})$", re.IGNORECASE)


def noise_files(folder: Path, channel: int | None, left_out: list[dict]) -> list[Path]:
    """The noise recordings under ``folder``, one file per recording.

    A folder holding two or more files named like ``ch01.wav, ch02.wav, ...``
    (optionally with a common prefix, e.g. ``DKITCHEN_ch01.wav``) is one
    recording stored one file per channel, as DEMAND distributes its 16-microphone
    recordings. With ``channel`` set (``audio.noise_channel``, 0-based) only the
    file of channel ``channel + 1`` (the names are 1-based) is used; the other
    channel files are added to ``left_out`` (rows of ``skipped.csv``), and so are
    all of a recording that has no such file. With ``channel=None`` every file is
    its own recording.

    Raises
    ------
    AudioError
        If ``folder`` does not exist.
    """
    files = list_audio(folder)
    if channel is None:
        return files
    groups: dict[tuple, list[tuple[int, Path]]] = {}
    for p in files:
        m = _CHANNEL_FILE.match(p.stem)
        if m:
            groups.setdefault((p.parent, (m.group(1) or "").lower()), []).append((int(m.group(2)), p))
    drop: set[Path] = set()
    for members in groups.values():
        if len(members) < 2:
            continue
        keep = [p for number, p in members if number == channel + 1]
        for _, p in members:
            if p not in keep[:1]:
                drop.add(p)
                why = (
                    (
                        f"not used: another channel of a one-file-per-channel recording; only ch{channel + 1:02d} is "
                        f"used (audio.noise_channel={channel})"
                    )
                    if keep
                    else (
                        f"not used: one-file-per-channel recording without a ch{channel + 1:02d} file "
                        f"(audio.noise_channel={channel}); set audio.noise_channel, or null to use every channel file"
                    )
                )
                left_out.append({"file": str(p), "reason": why})
    return [p for p in files if p not in drop]


def _usable_noises(folder: Path, files: list[Path], usable, skipped: list, what: str) -> list[Path]:
    """``files`` that load and are not silent; raises AudioError naming the first reason when none is."""
    good = [n for n in files if usable(n)]
    if not good:
        reasons = [r["reason"] for r in skipped if r["file"] in {str(f) for f in files}]
        detail = (
            f"{len(files)} audio file(s), none usable; first: {reasons[0]}"
            if files
            else "it holds no WAV/FLAC/OGG file"
        )
        raise AudioError(f"no usable noise recording for {what} in {folder} ({detail}); add noise recordings")
    return good


def _plan_mixed(cfg: Config, sources: dict[str, tuple[list[Path], list[Path], Path, Path]]) -> list[_Job]:
    jobs = []
    for split, (cleans, noises, root, noise_root) in sources.items():
        for c in cleans:
            for snr in cfg.mixing.snr_db:
                noise = noises[int(seeded_rng(cfg.seed, "noise", str(c.relative_to(root)), snr).integers(len(noises)))]
                jobs.append(_Job(split, c, root, noise, snr, noise_root=noise_root))
    return jobs


def _unreferenced_jobs(cfg: Config, folder: Path, kind: str, left_out: list[dict]) -> list[_Job]:
    """Train / val jobs for every recording under ``folder`` (no clean reference, no test split)."""
    if kind == "noise_only":
        files = noise_files(folder, cfg.audio.noise_channel, left_out)
        groups = dict(zip(("train", "val"), split_items(files, [cfg.mixing.val_fraction], seed=cfg.seed, key=kind)))
    else:
        files = list_audio(folder)
        groups, _ = split_by_speaker(
            files, [speaker_of(p, folder) for p in files], {"val": cfg.mixing.val_fraction}, seed=cfg.seed, key=kind
        )
    return [_Job(split, None, folder, None, None, noisy=p, kind=kind) for split, g in groups.items() for p in g]


def _discover(
    cfg: Config, data, clean, noise, noisy, skipped: list, usable, noise_only=None, left_out: list | None = None
) -> tuple[list[_Job], dict]:
    """Turn the input options into a list of jobs; returns (jobs, description of inputs).

    Unusable files found on the way are added to ``skipped``, channel files not used to ``left_out``.
    """
    left_out = [] if left_out is None else left_out
    jobs, inputs = _discover_speech(cfg, data, clean, noise, noisy, skipped, usable, noise_only, left_out)
    if noise_only is not None:
        noise_only = Path(noise_only)
        if not noise_only.is_dir():
            raise ConfigError(f"--noise-only {noise_only} is not a folder of noise-only recordings")
        jobs += _unreferenced_jobs(cfg, noise_only, "noise_only", left_out)
        inputs = {**inputs, "noise_only": str(noise_only)}
    return jobs, inputs


def _pairs(noisy: Path, clean: Path, skipped: list) -> list[tuple[Path, Path]]:
    """(noisy, clean) files matched by relative path without extension; the others go to ``skipped``."""
    clean_by_rel: dict[Path, Path] = {}
    for p in list_audio(clean):
        rel = p.relative_to(clean).with_suffix("")
        if rel in clean_by_rel:
            skipped.append(
                {
                    "file": str(p),
                    "reason": f"duplicate id {'-'.join(rel.parts)}: {clean_by_rel[rel].name} "
                    "has the same relative path without extension and is used",
                }
            )
        else:
            clean_by_rel[rel] = p
    pairs, paired = [], set()
    for p in list_audio(noisy):
        rel = p.relative_to(noisy).with_suffix("")
        ref = clean_by_rel.get(rel)
        if ref is None:
            skipped.append(
                {"file": str(p), "reason": f"unpaired: no clean file with relative path {rel} under {clean}"}
            )
        else:
            pairs.append((p, ref))
            paired.add(rel)
    skipped.extend(
        {"file": str(c), "reason": f"unpaired: no noisy file with relative path {rel} under {noisy}"}
        for rel, c in clean_by_rel.items()
        if rel not in paired
    )
    return pairs


def _discover_speech(
    cfg: Config, data, clean, noise, noisy, skipped: list, usable, noise_only, left_out: list
) -> tuple[list[_Job], dict]:
    m, channel = cfg.mixing, cfg.audio.noise_channel
    if noisy is not None and clean is None and noise is None:
        if noise_only is None:
            raise ConfigError(
                "--noisy needs --clean (the clean references paired by relative path), or "
                "--noise-only DIR to train the semi-supervised models (partitioned, curro) "
                "without clean speech"
            )
        if not Path(noisy).is_dir():
            raise ConfigError(f"--noisy {noisy} is not a folder")
        return (
            _unreferenced_jobs(cfg, Path(noisy), "noisy", left_out),
            {"mode": "noisy+noise_only", "noisy": str(noisy)},
        )
    if data is not None:
        if clean or noise or noisy:
            raise ConfigError("--data cannot be combined with --clean/--noise/--noisy; give one input layout")
        data = Path(data)
        for sub in ("train/clean", "train/noise", "test/clean", "test/noise"):
            if not (data / sub).is_dir():
                raise ConfigError(
                    f"--data {data}: missing folder {sub}/; a corpus needs "
                    "train/clean, train/noise, test/clean, test/noise (see data_sample/)"
                )
        tr_n, te_n = data / "train/noise", data / "test/noise"
        train_noises = _usable_noises(tr_n, noise_files(tr_n, channel, left_out), usable, skipped, "training")
        test_noises = _usable_noises(te_n, noise_files(te_n, channel, left_out), usable, skipped, "the test split")
        cleans = list_audio(data / "train/clean")
        by_spk, rule = split_by_speaker(
            cleans,
            [speaker_of(p, data / "train/clean") for p in cleans],
            {"val": m.val_fraction},
            seed=cfg.seed,
            key="clean",
        )
        tr_clean, va_clean = by_spk["train"], by_spk["val"]
        rule = {**rule, "test": "layout"}
        tr_noise, va_noise = split_items(train_noises, [m.val_fraction], seed=cfg.seed, key="noise")
        roots = {
            "train": (data / "train/clean", tr_n),
            "val": (data / "train/clean", tr_n),
            "test": (data / "test/clean", te_n),
        }
        sources = {
            "train": (tr_clean, tr_noise),
            "val": (va_clean, va_noise or tr_noise),
            "test": (list_audio(data / "test/clean"), test_noises),
        }
        shared = []
        if not va_noise and va_clean:
            log.warning("train/noise has too few usable recordings to hold some out; validation reuses training noises")
            shared = ["val"]
        inputs = {"mode": "data", "data": str(data), "split": rule, "noise_shared": shared}
    elif noisy is not None:
        if clean is None:
            raise ConfigError("--noisy needs --clean: the clean references paired by relative path")
        if noise is not None:
            raise ConfigError("--noisy cannot be combined with --noise; use --noisy DIR --clean DIR")
        noisy, clean = Path(noisy), Path(clean)
        pairs = _pairs(noisy, clean, skipped)
        by_spk, rule = split_by_speaker(
            pairs,
            [speaker_of(c, clean) for _, c in pairs],
            {"val": m.val_fraction, "test": m.test_fraction},
            seed=cfg.seed,
            key="pairs",
        )
        jobs = [_Job(split, c, clean, None, None, noisy=n, kind="paired") for split in SPLITS for n, c in by_spk[split]]
        return jobs, {"mode": "paired", "noisy": str(noisy), "clean": str(clean), "split": rule, "noise_shared": []}
    elif clean is not None and noise is not None:
        clean, noise = Path(clean), Path(noise)
        noises = _usable_noises(noise, noise_files(noise, channel, left_out), usable, skipped, "any split")
        cleans = list_audio(clean)
        by_spk, rule = split_by_speaker(
            cleans,
            [speaker_of(p, clean) for p in cleans],
            {"val": m.val_fraction, "test": m.test_fraction},
            seed=cfg.seed,
            key="clean",
        )
        n_groups = split_items(noises, [m.val_fraction, m.test_fraction], seed=cfg.seed, key="noise")
        shared = []
        if cleans and any(len(g) == 0 for g, f in zip(n_groups, (1.0, m.val_fraction, m.test_fraction)) if f > 0):
            need = 1 + sum(f > 0 for f in (m.val_fraction, m.test_fraction))
            if not m.share_noise:
                names = [s for s, f in zip(SPLITS, (1, m.val_fraction, m.test_fraction)) if f > 0]
                raise ConfigError(
                    f"--noise {noise} has {len(noises)} usable noise recording(s), too few for "
                    f"{' / '.join(names)} to have their own: that needs at least {need} (one each for "
                    f"{' and '.join(names[1:])}, the rest for training), so that test scores are on noises training "
                    "never heard. Add recordings, or pass --share-noise (mixing.share_noise: true) to let the "
                    "splits reuse them (recorded in params.json and printed in every summary.md)"
                )
            log.warning("%s: %d noise recording(s); the splits share them (--share-noise)", noise, len(noises))
            shared = [s for s in SPLITS[1:]]
            n_groups = [noises] * 3
        roots = {s: (clean, noise) for s in SPLITS}
        sources = {s: (by_spk[s], n) for s, n in zip(SPLITS, n_groups)}
        inputs = {
            "mode": "clean+noise",
            "clean": str(clean),
            "noise": str(noise),
            "split": rule,
            "noise_shared": shared,
        }
    else:
        raise ConfigError("no input given: use --data DIR, or --clean DIR --noise DIR, or --noisy DIR --clean DIR")
    full = {s: (c, n, *roots[s]) for s, (c, n) in sources.items() if c}
    return _plan_mixed(cfg, full), inputs


def _input_fingerprint(cfg: Config, jobs: list[_Job], inputs: dict) -> str:
    files = sorted({str(p) + "|" + file_stat_key(p) for j in jobs for p in (j.clean, j.noise, j.noisy) if p})
    return fingerprint(
        __version__, inputs, cfg.seed, cfg.to_dict()["audio"], cfg.to_dict()["mixing"], cfg.to_dict()["features"], files
    )


def _job_ids(jobs: list[_Job], inputs: dict) -> list[str]:
    """The utterance id of every job (known before any audio is read)."""
    ids = []
    for job in jobs:
        if job.kind in UNREFERENCED_KINDS:
            ids.append(("noise_only-" if job.kind == "noise_only" else "") + _stem_id(job.noisy, job.clean_root))
        elif job.noisy is None:
            noise = _stem_id(job.noise, job.noise_root) if job.noise_root else job.noise.stem
            ids.append(f"{_stem_id(job.clean, job.clean_root)}__{noise}__snr{job.snr_db:+g}")
        else:
            ids.append(_stem_id(job.noisy, Path(inputs["noisy"])))
    return ids


def _n_workers(jobs) -> int:
    """Worker processes for ``jobs`` (0: one per available core); raises ConfigError below 0."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0:
        raise ConfigError(
            f"--jobs must be a number of worker processes (1 or more), or 0 for one per CPU core; got {jobs!r}"
        )
    if jobs:
        return jobs
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _load(cfg: Config, path: Path, role: str, converted: dict) -> np.ndarray:
    """Read one input file at the configured rate and check it (``role``: clean, noise, noise_only or noisy).

    Noise recordings (``noise``, ``noise_only``) of several channels give channel
    ``audio.noise_channel``, the others the mean of their channels. What was
    converted is recorded in ``converted[str(path)]`` as ``(original rate, channels,
    channel taken or None)``. Raises AudioError.
    """
    sr = cfg.audio.sample_rate
    channel = cfg.audio.noise_channel if role in ("noise", "noise_only") else None
    y, info = load_audio(path, sample_rate=sr, channel=channel)
    converted[str(path)] = (info.orig_sample_rate, info.orig_channels, info.channel)
    frame_s = cfg.features.win_length / sr
    silence = cfg.audio.silence_rms_db if role == "clean" else None
    if role == "clean" and cfg.audio.min_duration_s >= frame_s:
        min_dur, key = cfg.audio.min_duration_s, "audio.min_duration_s"
    else:  # one analysis window: a shorter clip has no whole frame
        min_dur, key = frame_s, "one analysis window, features.win_length"
    return validate_audio(
        y, sample_rate=sr, min_duration_s=min_dur, silence_rms_db=silence, name=str(path), min_duration_key=key
    )


def conversions(converted: dict, used: set[str], sample_rate: int) -> dict:
    """Counts of the conversions of the files in ``used``, from :func:`_load`'s ``converted`` records.

    Returns ``{"resampled": {original rate: files}, "folded_to_mono": {channels: files},
    "channel_taken": {channel: files}}`` (string keys, sorted).
    """
    rates, folded, taken = Counter(), Counter(), Counter()
    for path in used:
        if path not in converted:
            continue
        orig_sr, channels, channel = converted[path]
        if orig_sr != sample_rate:
            rates[str(orig_sr)] += 1
        if channels > 1:
            (taken if channel is not None else folded)[str(channel if channel is not None else channels)] += 1
    return {
        k: dict(sorted(c.items(), key=lambda kv: int(kv[0])))
        for k, c in (("resampled", rates), ("folded_to_mono", folded), ("channel_taken", taken))
    }


def conversions_line(conv: dict, sample_rate: int, left_out: int) -> str | None:
    """One line saying what :func:`conversions` counted (None when nothing was converted or left out)."""
    parts = []
    if conv["resampled"]:
        rates = " and ".join(f"{n} file{'s' * (n != 1)} from {r} Hz" for r, n in conv["resampled"].items())
        parts.append(f"resampled {rates} to {sample_rate} Hz")
    for ch, n in conv["folded_to_mono"].items():
        parts.append(
            f"folded {n} {'stereo' if ch == '2' else ch + '-channel'} file{'s' * (n != 1)} to mono "
            "(mean of the channels)"
        )
    for ch, n in conv["channel_taken"].items():
        parts.append(f"took channel {ch} (audio.noise_channel) of {n} multi-channel noise file{'s' * (n != 1)}")
    if left_out:
        parts.append(
            f"left out {left_out} other-channel file{'s' * (left_out != 1)} of one-file-per-channel noise "
            "recordings (see skipped.csv)"
        )
    return ("inputs: " + "; ".join(parts)) if parts else None


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
    bad_path: str = ""  # the file ``bad_file`` is about
    skip: dict | None = None
    converted: dict = field(default_factory=dict)


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
        res.bad_path = str(job.clean or job.noisy)  # the file being read, named in skipped.csv if it fails
        try:
            if job.clean is not None and self.clean[0] != job.clean:
                self.clean = (job.clean, _load(cfg, job.clean, "clean", res.converted))
            y_clean = self.clean[1]
            res.bad_path = str(job.noisy or job.noise)
            if job.kind in UNREFERENCED_KINDS:
                noise_path = job.noisy
                y_noisy = _load(cfg, job.noisy, job.kind, res.converted)
                if not np.any(y_noisy):
                    raise AudioError(f"{job.noisy}: recording is all zeros (silent)")
                y_ref, gain, snr = None, 1.0, None
            elif job.noisy is None:
                noise_path = job.noise
                if noise_path not in self.noises:
                    self.noises[noise_path] = _load(cfg, noise_path, "noise", res.converted)
                rng = seeded_rng(cfg.seed, "offset", uid)
                try:
                    mix = mix_at_snr(
                        y_clean, self.noises[noise_path], job.snr_db, rng=rng, clip_peak=cfg.mixing.clip_peak
                    )
                except AudioError as exc:  # the noise's fault: skip this mixture only, keep the clean file
                    res.skip = {"file": str(noise_path), "reason": f"cannot mix with {job.clean.name}: {exc}"}
                    return res
                y_noisy, y_ref, gain, snr = mix.noisy, mix.clean, mix.gain, job.snr_db
            else:
                noise_path = job.noisy
                y_noisy = _load(cfg, job.noisy, "noisy", res.converted)
                if not np.any(y_noisy):
                    raise AudioError(f"{job.noisy}: recording is all zeros (silent)")
                if abs(y_noisy.size - y_clean.size) > 0.01 * max(y_noisy.size, y_clean.size):
                    raise AudioError(
                        f"{job.noisy}: length {y_noisy.size} differs from its clean pair "
                        f"{job.clean} ({y_clean.size} samples) by more than 1%"
                    )
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
        res.row = {
            "id": uid,
            "split": job.split,
            "speaker": speaker_of(job.clean or job.noisy, job.clean_root),
            "clean_file": str(job.clean or ""),
            "noise_file": str(noise_path),
            "snr_db": "" if snr is None else round(float(snr), 3),
            "gain": round(gain, 6),
            "n_samples": y_noisy.size,
            "n_frames": x_noisy.shape[0],
            "kind": job.kind,
        }
        return res


_WORKER: _Worker | None = None  # the worker of a worker process


def _init_worker(cfg: Config, work: Path) -> None:
    global _WORKER
    threadpool_limits(1, user_api="blas")  # see extract_features
    _WORKER = _Worker(cfg, work)


def _run_job(task: tuple[_Job, str, bool]) -> _Result:
    return _WORKER(task)


def extract_features(
    cfg: Config,
    *,
    out: str | Path,
    data=None,
    clean=None,
    noise=None,
    noisy=None,
    noise_only=None,
    force: bool = False,
    progress: bool = True,
    jobs: int = 1,
) -> ExtractSummary:
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

        Every folder is searched recursively for WAV/FLAC/OGG/AIFF files of any rate and bit
        depth (resampled to ``audio.sample_rate``). Speech and noisy recordings with several
        channels are averaged to mono; noise recordings (``noise``, ``noise_only``, the
        ``noise/`` folders of ``data``) give channel ``audio.noise_channel``, and of a
        DEMAND-style folder of one file per channel only that channel's file is used (see
        :func:`noise_files`). The summary's second line says what was resampled, folded,
        reduced to one channel or left out.
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
    converted: dict[str, tuple] = {}
    left_out: list[dict] = []

    def usable_noise(path: Path) -> bool:
        if path in noise_cache:
            return True
        try:
            y = _load(cfg, path, "noise", converted)
            if not np.any(y):
                raise AudioError(f"{path}: noise recording is all zeros (silent)")
        except AudioError as exc:
            if not any(r["file"] == str(path) for r in skipped):
                skipped.append({"file": str(path), "reason": str(exc)})
            return False
        noise_cache[path] = y
        return True

    plan, inputs = _discover(cfg, data, clean, noise, noisy, skipped, usable_noise, noise_only, left_out)
    if not plan:
        folders = ", ".join(str(v) for k, v in inputs.items() if k not in ("mode", "split", "noise_shared"))
        raise AudioError(
            f"no usable input in {folders}: "
            + (
                f"{len(skipped)} file(s) skipped, first: {skipped[0]['reason']}"
                if skipped
                else "no WAV/FLAC/OGG file found"
            )
            + "; fix the inputs and re-run"
        )
    fp = _input_fingerprint(cfg, plan, inputs)
    staged = StagedOutput(out, fp, marker="params.json", force=force)
    if staged.is_current():
        return ExtractSummary(Path(out), up_to_date=True)
    work = staged.begin()  # a resumed .partial folder comes back without a killed run's temporaries
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
            pool = ProcessPoolExecutor(
                n_workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(cfg, work)
            )
            results = pool.map(_run_job, tasks, chunksize=len(cfg.mixing.snr_db))
        for (job, uid, _), res in zip(
            tasks, tqdm(results, total=len(tasks), desc="01 extract", unit="utt", disable=not progress)
        ):
            converted.update(res.converted)
            src = job.noisy or job.clean
            if any(str(p) in bad_files for p in (job.clean, job.noisy, job.noise) if p is not None):
                continue  # a file already found unusable (the job failed on it again)
            if res.bad_file is not None:
                bad_files.setdefault(res.bad_path, res.bad_file)
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
            raise AudioError(
                f"no usable {split} utterance is left ({len(skipped)} file(s) skipped; first: "
                f"{skipped[0]['reason'] if skipped else 'none'}); fix the inputs and re-run"
            )
    if counts["train"] == 0:
        raise AudioError(
            f"no usable training utterance is left ({len(skipped)} file(s) skipped; first: "
            f"{skipped[0]['reason'] if skipped else 'none'}); fix the inputs and re-run"
        )
    used = {r[k] for r in rows for k in ("clean_file", "noise_file") if r[k]}
    conv = conversions(converted, used, sr)
    write_csv(work / "manifest.csv", rows, MANIFEST_FIELDS)
    write_csv(work / "skipped.csv", skipped + left_out, SKIPPED_FIELDS)
    seconds = time.perf_counter() - t0
    write_json(
        work / "params.json",
        {
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
            "left_out_channel_files": len(left_out),
            "conversions": conv,
            "audio_minutes": round(audio_s / 60, 3),
            "seconds": round(seconds, 2),
            "versions": package_versions(),
        },
    )
    staged.commit()
    line = conversions_line(conv, sr, len(left_out))
    return ExtractSummary(
        Path(out), counts=counts, skipped=len(skipped), seconds=seconds, audio_s=audio_s, notes=[line] if line else []
    )
