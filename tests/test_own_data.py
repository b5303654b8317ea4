"""Your own data: any folder layout, format, bit depth, sample rate and channel count, as the README promises.

Formats and bit depths load to the same samples; stereo speech is averaged, multi-channel noise gives
one channel (``audio.noise_channel``); DEMAND-style folders of one file per channel use one file per
recording; stage 01 says in one line what it converted. Each README layout runs through the script.
Inputs are never modified (01 -> 02, with --force too), and a finished output of another configuration
is refused without --force in one line.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from conftest import (
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

from speech_dae.audio import load_audio
from speech_dae.stages.extract import extract_features

_SETS = [a for s in TINY_SETS for a in ("--set", s)]


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize(
    "fmt, subtype, tol",
    [
        ("WAV", "PCM_U8", 1 / 128),
        ("WAV", "PCM_16", 1 / 32768),
        ("WAV", "PCM_24", 1 / 2**23),
        ("WAV", "PCM_32", 1e-7),
        ("WAV", "FLOAT", 0),
        ("WAV", "DOUBLE", 1e-7),
        ("FLAC", "PCM_16", 1 / 32768),
        ("FLAC", "PCM_24", 1 / 2**23),
        ("AIFF", "PCM_16", 1 / 32768),
    ],
)
@pytest.mark.parametrize("rate", [SR, 44100])
def test_every_bit_depth_and_rate_loads_to_the_same_samples(fmt, subtype, tol, rate, tmp_path):
    y = speech_clip(0, 0.5)
    src = soxr.resample(y, SR, rate).astype(np.float32) if rate != SR else y
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(str(path), src, rate, format=fmt, subtype=subtype)
    out, info = load_audio(path, sample_rate=SR)
    assert (info.orig_sample_rate, info.subtype, info.resampled) == (rate, subtype, rate != SR)
    decoded, _ = sf.read(str(path), dtype="float32")
    np.testing.assert_allclose(decoded, src, atol=1.02 * tol + 1e-7)  # only the bit depth's rounding
    assert out.shape == (y.size,)
    np.testing.assert_allclose(out, soxr.resample(decoded, rate, SR) if rate != SR else decoded, atol=1e-6)


def test_ogg_vorbis_loads_close_to_the_original(tmp_path):
    y = speech_clip(1, 0.5)
    sf.write(str(tmp_path / "x.ogg"), np.stack([y, y], 1), SR, format="OGG", subtype="VORBIS")
    out, info = load_audio(tmp_path / "x.ogg", sample_rate=SR)
    assert info.folded_to_mono and out.size == y.size
    assert np.corrcoef(out, y)[0, 1] > 0.99  # lossy, but the same signal


def _two_tone(n: int, sr: int = SR) -> np.ndarray:
    """Channel 0: a 500 Hz tone, channel 1: a 3000 Hz tone (so the channel used is seen in the spectrum)."""
    t = np.arange(n) / sr
    return np.stack([0.3 * np.sin(2 * np.pi * 500 * t), 0.3 * np.sin(2 * np.pi * 3000 * t)], 1).astype(np.float32)


def _band_energy(y: np.ndarray, hz: float) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size))) ** 2
    k = int(round(hz * y.size / SR))
    return float(spec[k - 3 : k + 4].sum() / spec.sum())


@pytest.mark.parametrize(
    "channel, tones", [(0, {500: True, 3000: False}), (1, {500: False, 3000: True}), (None, {500: True, 3000: True})]
)
def test_multichannel_noise_gives_the_configured_channel(channel, tones, tmp_path, tiny_cfg):
    corpus = build_corpus(tmp_path / "corpus", n_train_noise=0, n_test_noise=0)
    for split in ("train", "test"):
        (corpus / split / "noise").mkdir(parents=True)
        sf.write(str(corpus / split / "noise" / "array.wav"), _two_tone(2 * SR), SR, subtype="FLOAT")
    cfg = tiny_cfg.replace(**{"audio.noise_channel": channel, "mixing.snr_db": [-20]})
    out = tmp_path / "f"
    summary = extract_features(cfg, out=out, data=corpus, progress=False)
    row = next(r for r in _rows(out / "manifest.csv") if r["split"] == "test")
    mix, _ = sf.read(out / "mixtures" / f"{row['id']}.wav", dtype="float32")
    ref, _ = sf.read(out / "references" / f"{row['id']}.wav", dtype="float32")
    noise = mix - ref
    for hz, present in tones.items():
        assert (_band_energy(noise, hz) > 0.2) == present, (hz, _band_energy(noise, hz))
    what = "took channel" if channel is not None else "folded 2 stereo files to mono"
    assert what in summary.lines()[1]
    params = json.loads((out / "params.json").read_text())
    assert params["audio"]["noise_channel"] == channel


def _demand(folder: Path, envs=("DKITCHEN", "DLIVING"), n_ch: int = 4) -> None:
    for k, env in enumerate(envs):
        for ch in range(1, n_ch + 1):
            write_wav(folder / env / f"ch{ch:02d}.wav", noise_clip(k + ch, 1.5))


@pytest.mark.parametrize("channel, used", [(0, {"ch01"}), (2, {"ch03"}), (None, {"ch01", "ch02", "ch03", "ch04"})])
def test_demand_style_one_file_per_channel_folders_use_one_channel_file(channel, used, tmp_path, tiny_cfg):
    clean = tmp_path / "clean"
    for i in range(6):
        write_wav(clean / f"s{i}.wav", speech_clip(i, 1.0))
    _demand(tmp_path / "noise")
    cfg = tiny_cfg.replace(**{"audio.noise_channel": channel, "mixing.share_noise": True})  # 2 scenes for 3 splits
    out = tmp_path / "f"
    summary = extract_features(cfg, out=out, clean=clean, noise=tmp_path / "noise", progress=False)
    noises = {Path(r["noise_file"]) for r in _rows(out / "manifest.csv")}
    assert {p.stem for p in noises} <= used and {p.parent.name for p in noises} <= {"DKITCHEN", "DLIVING"}
    left = _rows(out / "skipped.csv")
    assert summary.skipped == 0 and len(left) == (0 if channel is None else 6)
    if channel is not None:
        assert {Path(r["file"]).stem for r in left} == {"ch01", "ch02", "ch03", "ch04"} - used
        assert all(
            r["reason"] == f"not used: another channel of a one-file-per-channel recording; only "
            f"ch{channel + 1:02d} is used (audio.noise_channel={channel})"
            for r in left
        )
        assert summary.lines()[1] == (
            "inputs: left out 6 other-channel files of one-file-per-channel noise recordings (see skipped.csv)"
        )
        assert all("__DKITCHEN-ch" in r["id"] or "__DLIVING-ch" in r["id"] for r in _rows(out / "manifest.csv"))


def test_a_channel_folder_without_the_configured_channel_is_listed(tmp_path, tiny_cfg):
    clean = tmp_path / "clean"
    for i in range(5):
        write_wav(clean / f"s{i}.wav", speech_clip(i, 1.0))
    _demand(tmp_path / "noise", envs=("A",), n_ch=2)
    write_wav(tmp_path / "noise" / "plain.wav", noise_clip(0, 1.5))
    out = tmp_path / "f"
    extract_features(
        tiny_cfg.replace(**{"audio.noise_channel": 5, "mixing.share_noise": True}),
        out=out,
        clean=clean,
        noise=tmp_path / "noise",
        progress=False,
    )
    reasons = {Path(r["file"]).name: r["reason"] for r in _rows(out / "skipped.csv")}
    why = (
        "not used: one-file-per-channel recording without a ch06 file (audio.noise_channel=5); "
        "set audio.noise_channel, or null to use every channel file"
    )
    assert reasons == {"ch01.wav": why, "ch02.wav": why}
    assert {Path(r["noise_file"]).name for r in _rows(out / "manifest.csv")} == {"plain.wav"}


def test_names_that_only_end_in_ch_and_a_number_are_ordinary_recordings(tmp_path):
    from speech_dae.stages.extract import noise_files

    for name in ("beach1", "beach2", "church1", "church2", "rec_ch01", "rec_ch02", "CH1", "CH2"):
        write_wav(tmp_path / f"{name}.wav", noise_clip(0, 0.1))
    left: list = []
    kept = noise_files(tmp_path, 0, left)
    assert [p.stem for p in kept] == ["CH1", "beach1", "beach2", "church1", "church2", "rec_ch01"]
    assert sorted(Path(r["file"]).stem for r in left) == ["CH2", "rec_ch02"]


def _own_corpus(root: Path) -> dict[str, Path]:
    """Nested folders of 44.1 kHz stereo 24-bit FLAC speech, 22.05 kHz OGG and 8-bit WAV noise, and broken files."""
    for layout in ("clean", "noisy"):
        for i in range(6):
            y = speech_clip(i, 1.0) + (noise_clip(i, 1.0) if layout == "noisy" else 0)
            y44 = soxr.resample(y, SR, 44100)
            path = root / layout / f"spk{i % 2}" / "session" / f"utt{i}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), np.stack([y44, 0.9 * y44], 1), 44100, subtype="PCM_24")
    noise = root / "noise"
    (noise / "cafe").mkdir(parents=True)
    for i in range(3):
        sf.write(str(noise / f"street{i}.ogg"), soxr.resample(noise_clip(i, 2.0), SR, 22050), 22050)
        sf.write(str(noise / "cafe" / f"cafe{i}.wav"), noise_clip(i + 3, 2.0), SR, subtype="PCM_U8")
    (root / "clean" / "spk0" / "session" / "broken.flac").write_bytes(b"fLaC" + bytes(100))
    (root / "clean" / "spk1" / "zero.wav").write_bytes(b"")
    return {"clean": root / "clean", "noisy": root / "noisy", "noise": noise}


def test_own_corpus_summary_says_in_one_line_what_was_converted(tmp_path, tiny_cfg):
    p = _own_corpus(tmp_path / "own")
    out = tmp_path / "f"
    summary = extract_features(tiny_cfg, out=out, clean=p["clean"], noise=p["noise"], progress=False)
    # the line counts the files the mixtures used: the 22.05 kHz OGG noises drawn, the 6 FLAC utterances
    n_ogg = len({r["noise_file"] for r in _rows(out / "manifest.csv") if r["noise_file"].endswith(".ogg")})
    assert 1 <= n_ogg <= 3
    assert summary.lines()[1] == (
        f"inputs: resampled {n_ogg} files from 22050 Hz and 6 files from 44100 Hz to 16000 Hz; "
        "folded 6 stereo files to mono (mean of the channels)"
    )
    params = json.loads((out / "params.json").read_text())
    assert params["conversions"] == {
        "resampled": {"22050": n_ogg, "44100": 6},
        "folded_to_mono": {"2": 6},
        "channel_taken": {},
    }
    assert {Path(r["file"]).name for r in _rows(out / "skipped.csv")} == {"broken.flac", "zero.wav"}
    ids = {r["id"].split("__")[0] for r in _rows(out / "manifest.csv")}
    assert "spk0-session-utt0" in ids and {r["speaker"] for r in _rows(out / "manifest.csv")} == {"spk0", "spk1"}


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["paired", "clean+noise", "data", "noisy+noise_only"])
def test_each_readme_layout_runs_through_the_script_on_own_data(layout, tmp_path):
    p = _own_corpus(tmp_path / "own")
    if layout == "paired":
        args, want = ["--noisy", p["noisy"], "--clean", p["clean"]], "skipped 2 input file(s)"
    elif layout == "clean+noise":
        args, want = ["--clean", p["clean"], "--noise", p["noise"]], "skipped 2 input file(s)"
    elif layout == "data":
        data = build_corpus(tmp_path / "data")
        _demand(data / "train" / "noise", envs=("DKITCHEN",))
        args, want = ["--data", data], "skipped 0 input file(s)"
    else:
        args, want = ["--noisy", p["noisy"], "--noise-only", p["noise"]], "skipped 0 input file(s)"
    before = tree_checksums(tmp_path)
    proc = run_script("01_extract_features.py", *args, "--out", "features/mine", *_SETS, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = stdout_lines(proc)
    assert lines[0].startswith("wrote ") and want in lines[0], lines
    assert lines[-1] == "next: python 02_build_dataset.py --features features/mine --out datasets/mine"
    if layout == "data":
        assert lines[1] == (
            "inputs: left out 3 other-channel files of one-file-per-channel noise recordings (see skipped.csv)"
        )
    else:
        n = 12 if layout == "paired" else 6  # paired: the noisy files and their references
        assert lines[1].startswith("inputs: resampled ") and f"folded {n} stereo files to mono" in lines[1]
    kinds = {r["kind"] for r in _rows(tmp_path / "features" / "mine" / "manifest.csv")}
    assert (
        kinds
        == {
            "paired": {"paired"},
            "clean+noise": {"mixture"},
            "data": {"mixture"},
            "noisy+noise_only": {"noisy", "noise_only"},
        }[layout]
    )
    assert {k: v for k, v in tree_checksums(tmp_path).items() if not k.startswith("features/")} == before


@pytest.mark.slow
def test_01_and_02_never_modify_their_inputs_even_with_force(tmp_path):
    corpus = build_corpus(tmp_path / "corpus")
    before = tree_checksums(corpus)
    for extra in ([], ["--force"]):
        one = run_script(
            "01_extract_features.py", "--data", corpus, "--out", "features/f", *_SETS, *extra, cwd=tmp_path
        )
        assert one.returncode == 0, one.stderr
        feats = tree_checksums(tmp_path / "features" / "f")
        two = run_script(
            "02_build_dataset.py", "--features", "features/f", "--out", "datasets/f", *_SETS, *extra, cwd=tmp_path
        )
        assert two.returncode == 0, two.stderr
        assert tree_checksums(corpus) == before, f"01/02 {extra} modified the corpus"
        assert tree_checksums(tmp_path / "features" / "f") == feats, f"02 {extra} modified its features"


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["01", "02"])
def test_another_configuration_is_refused_in_one_line_without_force(stage, tmp_path):
    corpus = build_corpus(tmp_path / "corpus")
    assert (
        run_script("01_extract_features.py", "--data", corpus, "--out", "features/f", *_SETS, cwd=tmp_path).returncode
        == 0
    )
    if stage == "01":
        cmd, out = ["01_extract_features.py", "--data", corpus, "--out", "features/f"], tmp_path / "features" / "f"
    else:
        assert (
            run_script(
                "02_build_dataset.py", "--features", "features/f", "--out", "datasets/f", *_SETS, cwd=tmp_path
            ).returncode
            == 0
        )
        cmd = ["02_build_dataset.py", "--features", "features/f", "--out", "datasets/f"]
        out = tmp_path / "datasets" / "f"
    finished = tree_checksums(out)
    other = "mixing.snr_db=[5]" if stage == "01" else "dataset.context=5"
    proc = run_script(*cmd, *_SETS, "--set", other, cwd=tmp_path)
    assert proc.returncode == 2
    line = error_line(proc)
    assert line.startswith(
        f"error: {Path(*out.parts[-2:])} already holds a run of another configuration (fingerprint "
    ) and line.endswith("); pass --force to replace it, or choose another output name")
    assert tree_checksums(out) == finished and not stdout_lines(proc)
    forced = run_script(*cmd, *_SETS, "--set", other, "--force", cwd=tmp_path)
    assert forced.returncode == 0 and tree_checksums(out) != finished


@pytest.mark.slow
def test_no_clean_layout_next_lines_keep_the_config_and_propose_a_model_that_trains_on_it(tmp_path):
    from conftest import REPO_ROOT

    p = _own_corpus(tmp_path / "own")
    config = REPO_ROOT / "configs" / "thesis.yaml"
    one = run_script(
        "01_extract_features.py",
        "--config",
        config,
        "--noisy",
        p["noisy"],
        "--noise-only",
        p["noise"],
        "--out",
        "features/mine",
        cwd=tmp_path,
    )
    assert one.returncode == 0, one.stderr
    assert stdout_lines(one)[-1] == (
        f"next: python 02_build_dataset.py --config {config} --features features/mine --out datasets/mine"
    )
    two = run_script(
        "02_build_dataset.py",
        "--config",
        config,
        "--set",
        "model.name=type2",
        "--features",
        "features/mine",
        "--out",
        "datasets/mine",
        cwd=tmp_path,
    )
    assert two.returncode == 0, two.stderr
    assert "context 1 frames" in stdout_lines(two)[0]
    assert stdout_lines(two)[-1] == (
        f"next: python 03_train_autoencoder.py --config {config} --dataset datasets/mine "
        "--model partitioned --run mine_partitioned"
    )
    three = run_script(
        "03_train_autoencoder.py",
        "--config",
        config,
        "--set",
        "model.hparams.partitioned.units=16",
        "--set",
        "training.epochs=1",
        "--dataset",
        "datasets/mine",
        "--model",
        "partitioned",
        "--run",
        "mine_partitioned",
        cwd=tmp_path,
    )
    assert three.returncode == 0, three.stderr
    assert stdout_lines(three)[-1] == (
        "next: python 04_reconstruct.py --model models/mine_partitioned --input "
        "NOISY_FILE_OR_DIR  (this dataset has no test split)"
    )


def test_04_without_input_on_features_without_a_test_split_says_what_to_pass(tmp_path):
    from speech_dae.errors import ArtifactError
    from speech_dae.inputs import manifest_items

    (tmp_path / "manifest.csv").write_text("id,split,snr_db\nnoisy-a,train,\nnoise_only-b,val,\n")
    with pytest.raises(
        ArtifactError,
        match=r"manifest.csv lists no test utterance; features built without clean "
        r"references \(01 --noisy --noise-only\) have no test split: pass "
        r"--input NOISY_FILE_OR_DIR \(and --clean DIR to score\)$",
    ):
        manifest_items(tmp_path)
