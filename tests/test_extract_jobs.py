"""Stage 01 with ``--jobs N``: worker processes give the same output as one process."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import (
    REPO_ROOT,
    SR,
    TINY_SETS,
    build_corpus,
    error_line,
    noise_clip,
    run_script,
    speech_clip,
    stdout_lines,
    tree_checksums,
    write_wav,
)

from speech_dae.errors import ConfigError
from speech_dae.stages.extract import extract_features


def _contents(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of a stage-01 folder, but for what may differ between two identical runs:
    the timing in ``params.json`` and the write time libsndfile stamps into a float WAV's PEAK chunk."""
    out = {}
    for rel in tree_checksums(folder):
        data = (folder / rel).read_bytes()
        if rel == "params.json":
            params = json.loads(data)
            assert isinstance(params.pop("seconds"), float)
            data = json.dumps(params, sort_keys=True).encode()
        elif rel.endswith(".wav") and (i := data.find(b"PEAK", 12, 200)) >= 0:
            data = data[: i + 12] + bytes(4) + data[i + 16 :]  # PEAK: id, size, version, *timestamp*, peaks
        out[rel] = hashlib.sha256(data).hexdigest()
    return out


def _summary(summary, out: Path) -> str:
    """The summary line without the output folder and the timing."""
    return re.sub(r" in [0-9.]+ s \([0-9]+x real time\)$", "", summary.lines()[0]).replace(str(out), "OUT")


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def messy_corpus(tmp_path) -> Path:
    """A tiny ``--data`` corpus with unusable files, a duplicate id and a noise-only folder.

    With one training noise (shared by validation) both files of the same id get the same mixture ids.
    """
    corpus = build_corpus(tmp_path / "corpus", n_train_clean=4, n_train_noise=1, n_test_clean=2, n_test_noise=1)
    tc = corpus / "train" / "clean"
    (tc / "unreadable.wav").write_bytes(os.urandom(3000))
    write_wav(tc / "short.wav", speech_clip(0, 0.1))  # < audio.min_duration_s
    write_wav(tc / "silent.wav", np.zeros(SR, np.float32))  # < audio.silence_rms_db
    sf.write(str(tc / "spkA__utt0.flac"), speech_clip(3, 1.0), SR)  # same id as spkA__utt0.wav
    (corpus / "test" / "noise" / "broken_noise.wav").write_bytes(os.urandom(1000))
    only = tmp_path / "noise_only"
    for i in range(3):
        write_wav(only / f"room{i}.wav", noise_clip(i, 0.8))
    (only / "bad_room.wav").write_bytes(os.urandom(500))
    write_wav(only / "quiet_room.wav", np.zeros(SR, np.float32))  # all zeros: skipped
    return corpus


def test_jobs_2_writes_the_same_files_skipped_rows_and_summary_as_jobs_1(messy_corpus, tmp_path, tiny_cfg):
    kw = dict(data=messy_corpus, noise_only=tmp_path / "noise_only", progress=False)
    one = extract_features(tiny_cfg, out=tmp_path / "one", jobs=1, **kw)
    two = extract_features(tiny_cfg, out=tmp_path / "two", jobs=2, **kw)
    assert _summary(two, tmp_path / "two") == _summary(one, tmp_path / "one")
    assert (two.counts, two.skipped, two.audio_s) == (one.counts, one.skipped, one.audio_s)
    a, b = _contents(tmp_path / "one"), _contents(tmp_path / "two")
    assert sorted(a) == sorted(b) and a == b
    skipped_rows = _rows(tmp_path / "two" / "skipped.csv")
    skipped = {Path(r["file"]).name: r["reason"] for r in skipped_rows}
    assert one.skipped == len(skipped_rows) == 8
    assert "cannot read" in skipped["unreadable.wav"] and "cannot read" in skipped["broken_noise.wav"]
    assert "too short" in skipped["short.wav"] and "silent" in skipped["silent.wav"]
    assert "cannot read" in skipped["bad_room.wav"] and "all zeros" in skipped["quiet_room.wav"]
    dups = [r for r in skipped_rows if r["reason"].startswith("duplicate id")]
    assert sorted(r["reason"] for r in dups) == [
        "duplicate id spkA__utt0__noise0__snr+0",
        "duplicate id spkA__utt0__noise0__snr+10",
    ]
    rows = _rows(tmp_path / "two" / "manifest.csv")
    written = {r["id"]: Path(r["clean_file"]).name for r in rows}
    dup_file = Path(dups[0]["file"]).name
    assert dup_file in ("spkA__utt0.wav", "spkA__utt0.flac") and dups[1]["file"] == dups[0]["file"]
    assert written["spkA__utt0__noise0__snr+0"] == written["spkA__utt0__noise0__snr+10"] != dup_file
    assert {r["kind"] for r in rows} == {"mixture", "noise_only"} and len(written) == len(rows)
    assert rows == _rows(tmp_path / "one" / "manifest.csv")


@pytest.mark.parametrize("layout", ["paired", "noisy+noise_only"])
def test_jobs_3_matches_jobs_1_in_the_other_layouts(layout, tmp_path, tiny_cfg):
    noisy, clean, only = tmp_path / "noisy", tmp_path / "clean", tmp_path / "only"
    for i in range(5):
        write_wav(clean / f"s{i}.wav", speech_clip(i, 1.0))
        write_wav(noisy / f"s{i}.wav", speech_clip(i, 1.0) + noise_clip(i, 1.0))
        write_wav(only / f"n{i}.wav", noise_clip(i, 0.7))
    write_wav(noisy / "lonely.wav", noise_clip(0, 1.0))  # paired: no clean file
    write_wav(clean / "long.wav", speech_clip(1, 1.0))
    write_wav(noisy / "long.wav", noise_clip(1, 1.5))  # paired: length differs from its pair
    (noisy / "broken.wav").write_bytes(os.urandom(800))
    (only / "broken_noise.wav").write_bytes(os.urandom(800))
    kw = dict(noisy=noisy, progress=False, **({"clean": clean} if layout == "paired" else {"noise_only": only}))
    one = extract_features(tiny_cfg, out=tmp_path / "one", **kw)
    three = extract_features(tiny_cfg, out=tmp_path / "three", jobs=3, **kw)
    assert (three.counts, three.skipped) == (one.counts, one.skipped)
    assert one.skipped == (3 if layout == "paired" else 2)  # paired: lonely, long and broken; else the broken two
    assert _contents(tmp_path / "one") == _contents(tmp_path / "three")


def test_the_fingerprint_does_not_depend_on_jobs(tiny_corpus, tmp_path, tiny_cfg):
    out = tmp_path / "features"
    extract_features(tiny_cfg, out=out, data=tiny_corpus, progress=False, jobs=2)
    assert extract_features(tiny_cfg, out=out, data=tiny_corpus, progress=False, jobs=1).up_to_date
    assert extract_features(tiny_cfg, out=out, data=tiny_corpus, progress=False, jobs=0).up_to_date


@pytest.mark.parametrize("jobs", [-1, -4, 1.5, "2"])
def test_a_bad_jobs_value_is_a_config_error(jobs, tiny_corpus, tmp_path, tiny_cfg):
    with pytest.raises(
        ConfigError,
        match=r"--jobs must be a number of worker processes \(1 or more\), or 0 for "
        r"one per CPU core; got ",
    ):
        extract_features(tiny_cfg, out=tmp_path / "f", data=tiny_corpus, progress=False, jobs=jobs)
    assert not (tmp_path / "f").exists() and not (tmp_path / "f.partial").exists()


@pytest.mark.slow
def test_cli_jobs_2_equals_jobs_1_and_rejects_negative_jobs(tiny_corpus, tmp_path, tiny_cfg):
    sets = [a for s in TINY_SETS for a in ("--set", s)]
    ok = run_script(
        "01_extract_features.py", "--data", tiny_corpus, "--out", tmp_path / "two", "--jobs", "2", *sets, cwd=tmp_path
    )
    assert ok.returncode == 0, ok.stderr
    assert stdout_lines(ok)[0].startswith(f"wrote 8 utterances to {tmp_path / 'two'} (train 4, val 2, test 2)")
    extract_features(tiny_cfg, out=tmp_path / "one", data=tiny_corpus, progress=False)
    assert _contents(tmp_path / "one") == _contents(tmp_path / "two")
    bad = run_script(
        "01_extract_features.py", "--data", tiny_corpus, "--out", tmp_path / "bad", "--jobs", "-1", cwd=tmp_path
    )
    assert bad.returncode == 2
    assert error_line(bad) == (
        "error: --jobs must be a number of worker processes (1 or more), or 0 for one per CPU core; got -1"
    )
    helped = run_script("01_extract_features.py", "--help", cwd=tmp_path, progress_flag=False)
    assert "--jobs N" in helped.stdout and "0 = one per CPU core (default: 1)" in " ".join(helped.stdout.split())


def test_a_worker_process_imports_no_tensorflow():
    """What a spawned worker of ``01_extract_features.py`` imports: the script as ``__mp_main__``, then the job."""
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__mp_main__'); "
        "import speech_dae.stages.extract; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(REPO_ROOT / "01_extract_features.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
