"""Bad input on purpose: every kind of broken file gets a precise reason, through the loader and stages 01, 04, 05.

Complements tests/test_audio.py (random bytes, a 0-sample WAV, NaN, too short, silent clean, a broken
noise file, nothing usable). Here: 0-byte, truncated and header-only files of each format, Inf, huge and
absurd-rate files, clips shorter than one analysis window, unpaired files in both directions, duplicate
references, a noise folder with no usable file (one error line, exit 2), the same files through stages 04,
05 and ``speech-dae denoise``, and property-based tests (hypothesis) with random bytes and random arrays.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
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
    identity_run_dir,
    noise_clip,
    run_script,
    speech_clip,
    stdout_lines,
    tree_checksums,
    write_wav,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from speech_dae.audio import load_audio
from speech_dae.errors import AudioError, SpeechDAEError
from speech_dae.stages.extract import extract_features


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _skipped(out: Path) -> dict[str, str]:
    return {Path(r["file"]).name: r["reason"] for r in _rows(out / "skipped.csv")}


def _encoded(y: np.ndarray, fmt: str, subtype: str, sr: int = SR) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


#: name -> (bytes of the file, words its reason must hold)
def _bad_files() -> dict[str, tuple[bytes, str]]:
    y = speech_clip(0, 1.0)
    wav, flac, ogg = _encoded(y, "WAV", "PCM_16"), _encoded(y, "FLAC", "PCM_24"), _encoded(y, "OGG", "VORBIS")
    inf = y.copy()
    inf[500] = np.inf
    return {
        "zero_bytes.wav": (b"", "file is empty (0 bytes)"),
        "zero_bytes.flac": (b"", "file is empty (0 bytes)"),
        "zero_bytes.ogg": (b"", "file is empty (0 bytes)"),
        "truncated.wav": (
            wav[: len(wav) // 2],
            "truncated: its header announces 16000 samples per channel, "
            f"the file holds {(len(wav) // 2 - 44) // 2} (an incomplete copy?)",
        ),
        "header_only.wav": (wav[:44], "truncated: its header announces 16000 samples per channel, the file holds 0"),
        "truncated.flac": (flac[: len(flac) // 2], "cannot read audio"),
        # an Ogg stream announces no length: cut before its first audio page it has no samples, cut later it
        # decodes as a shorter valid file
        "truncated.ogg": (ogg[: len(ogg) // 2], "file has no samples (empty, or cut off before its first samples)"),
        "inf.wav": (_encoded(inf, "WAV", "FLOAT"), "1 samples are NaN or Inf"),
        "huge.wav": (_encoded(y * 1e30, "WAV", "FLOAT"), "far beyond full scale (±1)"),
        "rate_100.wav": (_encoded(y[:800], "WAV", "PCM_16", sr=100), "sample rate 100 Hz is not an audio rate"),
        "one_sample_44k.wav": (
            _encoded(y[:1], "WAV", "PCM_16", sr=44100),  # found by the property-based test
            "too short: its 1 sample(s) at 44100 Hz make no sample at 16000 Hz",
        ),
    }


@pytest.mark.parametrize("name", sorted(_bad_files()))
def test_loader_gives_a_precise_reason_for_each_broken_file(name, tmp_path):
    data, words = _bad_files()[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(AudioError) as err:
        load_audio(path, sample_rate=SR)
    assert str(err.value).startswith(f"{path}: ") and words in str(err.value)


def test_a_streamed_wav_with_unknown_length_is_not_called_truncated(tmp_path):
    data = bytearray(_encoded(speech_clip(0, 0.5), "WAV", "PCM_16"))
    i = data.find(b"data")
    data[i + 4 : i + 8] = b"\xff\xff\xff\xff"  # what a writer to a pipe leaves: "unknown size"
    (tmp_path / "streamed.wav").write_bytes(bytes(data))
    y, _ = load_audio(tmp_path / "streamed.wav", sample_rate=SR)
    assert y.size == SR // 2


def test_noise_channel_of_a_file_with_fewer_channels_is_refused(tmp_path):
    sf.write(str(tmp_path / "st.wav"), np.stack([noise_clip(0, 0.5)] * 2, 1), SR)
    with pytest.raises(
        AudioError,
        match=r"has 2 channels, so audio.noise_channel=3 is not one of them; set "
        r"audio.noise_channel to 0..1",
    ):
        load_audio(tmp_path / "st.wav", sample_rate=SR, channel=3)


# ------------------------------------------------------------------ stage 01
def test_stage01_lists_every_broken_file_in_each_role_and_uses_the_rest(tmp_path, tiny_cfg):
    corpus = build_corpus(tmp_path / "corpus", n_train_clean=3, n_train_noise=2, n_test_clean=1, n_test_noise=1)
    bad = _bad_files()
    for name, (data, _) in bad.items():
        (corpus / "train" / "clean" / name).write_bytes(data)
        (corpus / "train" / "noise" / f"n_{name}").write_bytes(data)
    write_wav(corpus / "train" / "clean" / "one_frame.wav", speech_clip(1, 0.02))  # < one 512-sample window
    write_wav(corpus / "train" / "noise" / "n_one_frame.wav", noise_clip(1, 0.02))
    before = tree_checksums(corpus)
    out = tmp_path / "features"
    cfg = tiny_cfg.replace(**{"audio.min_duration_s": 0.01})  # so that the window is the limit
    summary = extract_features(cfg, out=out, data=corpus, progress=False)
    assert tree_checksums(corpus) == before
    skipped = _skipped(out)
    for name, (_, words) in bad.items():
        assert words in skipped[name] and words in skipped[f"n_{name}"], name
    window = "too short (0.020 s < one analysis window, features.win_length=0.032 s)"
    assert window in skipped["one_frame.wav"] and window in skipped["n_one_frame.wav"]
    assert summary.skipped == len(skipped) == 2 * len(bad) + 2
    assert f"skipped {summary.skipped} input file(s) (see skipped.csv)" in summary.lines()[0]
    used = {Path(r[k]).name for r in _rows(out / "manifest.csv") for k in ("clean_file", "noise_file")}
    assert not used & set(skipped) and summary.counts["train"] > 0


def test_stage01_paired_lists_unpaired_files_both_ways_duplicates_and_silent_recordings(tmp_path, tiny_cfg):
    noisy, clean = tmp_path / "noisy", tmp_path / "clean"
    for i in range(5):
        write_wav(clean / "spk" / f"u{i}.wav", speech_clip(i, 1.0))
        write_wav(noisy / "spk" / f"u{i}.wav", speech_clip(i, 1.0) + noise_clip(i, 1.0))
        write_wav(clean / "spk" / f"v{i}.wav", speech_clip(i + 1, 1.0))
        write_wav(noisy / "spk" / f"v{i}.wav", speech_clip(i + 1, 1.0) + noise_clip(i, 1.0))
    write_wav(noisy / "spk" / "only_noisy.wav", noise_clip(0, 1.0))
    write_wav(clean / "spk" / "only_clean.wav", speech_clip(1, 1.0))
    sf.write(str(clean / "spk" / "u1.flac"), speech_clip(1, 1.0), SR)  # same id as u1.wav
    write_wav(clean / "spk" / "u5.wav", speech_clip(2, 1.0))
    write_wav(noisy / "spk" / "u5.wav", np.zeros(SR, np.float32))  # silent noisy
    write_wav(clean / "spk" / "u6.wav", np.zeros(SR, np.float32))  # silent clean
    write_wav(noisy / "spk" / "u6.wav", noise_clip(2, 1.0))
    out = tmp_path / "features"
    summary = extract_features(tiny_cfg, out=out, noisy=noisy, clean=clean, progress=False)
    skipped = {r["file"]: r["reason"] for r in _rows(out / "skipped.csv")}
    assert skipped == {
        str(clean / "spk" / "u1.wav"): "duplicate id spk-u1: u1.flac has the same relative path without extension "
        "and is used",
        str(noisy / "spk" / "only_noisy.wav"): f"unpaired: no clean file with relative path spk/only_noisy under "
        f"{clean}",
        str(clean / "spk" / "only_clean.wav"): f"unpaired: no noisy file with relative path spk/only_clean under "
        f"{noisy}",
        str(noisy / "spk" / "u5.wav"): f"{noisy / 'spk' / 'u5.wav'}: recording is all zeros (silent)",
        str(clean / "spk" / "u6.wav"): f"{clean / 'spk' / 'u6.wav'}: silent (RMS -inf dBFS < "
        "audio.silence_rms_db=-70 dBFS)",
    }
    assert summary.skipped == 5 and sum(summary.counts.values()) == 10


@pytest.mark.slow
def test_stage01_with_a_noise_folder_of_no_usable_file_exits_2_naming_the_first_reason(tmp_path):
    corpus = build_corpus(tmp_path / "corpus", n_test_noise=0)
    (corpus / "test" / "noise").mkdir(parents=True)
    (corpus / "test" / "noise" / "a.wav").write_bytes(b"")
    write_wav(corpus / "test" / "noise" / "b.wav", np.zeros(SR, np.float32))
    before = tree_checksums(corpus)
    proc = run_script(
        "01_extract_features.py",
        "--data",
        corpus,
        "--out",
        "features/x",
        *[a for s in TINY_SETS for a in ("--set", s)],
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    noise = corpus / "test" / "noise"
    assert error_line(proc) == (
        f"error: no usable noise recording for the test split in {noise} (2 audio file(s), "
        f"none usable; first: {noise / 'a.wav'}: file is empty (0 bytes); remove it or "
        "copy it again); add noise recordings"
    )
    assert tree_checksums(corpus) == before and not (tmp_path / "features" / "x").exists()


def test_stage01_noisy_and_noise_only_with_only_broken_noisy_files_fails_in_one_line(tmp_path, tiny_cfg):
    noisy, only = tmp_path / "noisy", tmp_path / "only"
    (noisy / "a.wav").parent.mkdir()
    (noisy / "a.wav").write_bytes(b"")
    write_wav(noisy / "b.wav", np.zeros(SR, np.float32))
    for i in range(3):
        write_wav(only / f"n{i}.wav", noise_clip(i, 1.0))
    with pytest.raises(AudioError) as err:
        extract_features(tiny_cfg, out=tmp_path / "f", noisy=noisy, noise_only=only, progress=False)
    assert str(err.value).startswith("no usable train utterance is left (2 file(s) skipped; first: ")


def test_stage01_with_an_empty_clean_folder_fails_in_one_line(tmp_path, tiny_cfg):
    (tmp_path / "clean").mkdir()
    write_wav(tmp_path / "noise" / "n.wav", noise_clip(0, 1.0))
    with pytest.raises(AudioError, match=r"^no usable input in .*clean, .*noise: no WAV/FLAC/OGG file found; "):
        extract_features(
            tiny_cfg, out=tmp_path / "f", clean=tmp_path / "clean", noise=tmp_path / "noise", progress=False
        )


# ------------------------------------------------------ stages 04, 05, denoise
def _good_pairs(tmp_path: Path, cfg) -> tuple[Path, Path, Path]:
    """An identity run and 2 good noisy files with their clean references: ``(run, noisy_dir, clean_dir)``."""
    run = identity_run_dir(tmp_path / "run", cfg)
    noisy, clean = tmp_path / "noisy", tmp_path / "clean"
    for i in range(2):
        write_wav(clean / f"good{i}.wav", speech_clip(i, 1.0))
        write_wav(noisy / f"good{i}.wav", speech_clip(i, 1.0) + noise_clip(i, 1.0))
    return run, noisy, clean


@pytest.fixture
def bad_folder(tmp_path, tiny_cfg):
    """An identity run, 2 good noisy files with references, and the broken files (no references)."""
    run, noisy, clean = _good_pairs(tmp_path, tiny_cfg)
    for name, (data, _) in _bad_files().items():
        (noisy / name).write_bytes(data)
    write_wav(noisy / "one_frame.wav", speech_clip(0, 0.02))
    return run, noisy, clean


def test_stage04_skips_each_broken_input_with_its_reason(bad_folder, tmp_path, tiny_cfg, caplog):
    from speech_dae.stages.reconstruct import reconstruct

    run, noisy, clean = bad_folder
    before = tree_checksums(noisy)
    with caplog.at_level("WARNING"):
        summary = reconstruct(
            tiny_cfg,
            model_dir=run,
            inputs=noisy,
            clean=clean,
            out_root=tmp_path / "o",
            images_root=tmp_path / "i",
            progress=False,
        )
    assert sorted(r["id"] for r in summary.rows) == ["good0", "good1"]
    warned = " | ".join(r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped: "))
    for name, (_, words) in _bad_files().items():
        assert f"{noisy / name}: " in warned and words in warned, name
    assert "one_frame.wav: too short (0.020 s < 0.032 s)" in warned
    assert tree_checksums(noisy) == before


def test_stage04_with_a_broken_or_silent_reference_denoises_it_unscored_and_scores_the_others(
    bad_folder, tmp_path, tiny_cfg, caplog
):
    from speech_dae.stages.reconstruct import reconstruct

    run, noisy, clean = bad_folder
    for name in ("x", "s"):
        write_wav(noisy / f"{name}.wav", speech_clip(0, 1.0))
    (clean / "x.wav").write_bytes(b"")
    write_wav(clean / "s.wav", np.zeros(SR, np.float32))
    with caplog.at_level("WARNING"):
        summary = reconstruct(
            tiny_cfg,
            model_dir=run,
            inputs=noisy,
            clean=clean,
            out_root=tmp_path / "o",
            images_root=tmp_path / "i",
            progress=False,
        )
    rows = {r["id"]: r for r in summary.rows}
    assert {"good0", "good1", "x", "s"} <= set(rows)
    assert all(np.isfinite(rows[g]["si_sdr_out"]) for g in ("good0", "good1"))
    assert "si_sdr_out" not in rows["x"] and "si_sdr_out" not in rows["s"]
    assert (tmp_path / "o" / "run" / "x_denoised.wav").is_file()
    lines = summary.lines()
    assert (
        f"x: denoised, not scored (clean reference unusable: {clean / 'x.wav'}: file is empty (0 bytes); "
        "remove it or copy it again)"
    ) in lines
    assert (
        f"s: denoised, not scored (clean reference unusable: {clean / 's.wav'}: silent (RMS -inf dBFS < "
        "audio.silence_rms_db=-70 dBFS))"
    ) in lines
    assert f"not scored: {noisy / 'x.wav'}: the clean reference is unusable: {clean / 'x.wav'}: " in caplog.text
    assert {r["id"] for r in _rows(tmp_path / "o" / "run" / "metrics.csv")} == {"good0", "good1"}
    assert "2 not scored (clean reference unusable)" in (tmp_path / "o" / "run" / "report.html").read_text()


def test_stage05_lists_broken_references_and_scores_the_rest(bad_folder, tmp_path, tiny_cfg):
    from speech_dae.stages.evaluate import evaluate

    run, noisy, clean = bad_folder
    refs = {}
    for name, (data, _) in _bad_files().items():  # good noisy files whose references are the broken ones
        stem = name.replace(".", "_")
        (noisy / name).unlink()
        write_wav(noisy / f"{stem}.wav", speech_clip(0, 1.0))
        (clean / f"{stem}{Path(name).suffix}").write_bytes(data)
        refs[clean / f"{stem}{Path(name).suffix}"] = _bad_files()[name][1]
    summary = evaluate(
        tiny_cfg,
        out=tmp_path / "rep",
        models=[run],
        baselines=["wiener"],
        inputs=noisy,
        clean=clean,
        metrics=["si_sdr"],
        progress=False,
    )
    assert summary.n_files == 2
    skipped = " | ".join(summary.skipped)
    for path, words in refs.items():
        assert f"{path}: " in skipped and words in skipped, path.name
    assert "one_frame.wav: no clean reference" in skipped


def test_stage05_skips_a_silent_reference_instead_of_scoring_nan(tmp_path, tiny_cfg):
    from speech_dae.stages.evaluate import evaluate

    run, noisy, clean = _good_pairs(tmp_path, tiny_cfg)
    write_wav(noisy / "quiet.wav", speech_clip(2, 1.0) + noise_clip(2, 1.0))
    write_wav(clean / "quiet.wav", np.full(SR, 1e-5, np.float32), subtype="FLOAT")  # -100 dBFS < -70 dBFS
    summary = evaluate(
        tiny_cfg,
        out=tmp_path / "rep",
        models=[run],
        baselines=["wiener"],
        inputs=noisy,
        clean=clean,
        metrics=["si_sdr"],
        progress=False,
    )
    reason = f"{clean / 'quiet.wav'}: silent (RMS -100.0 dBFS < audio.silence_rms_db=-70 dBFS)"
    assert summary.n_files == 2 and summary.skipped == [reason]
    assert f"- {reason}" in (tmp_path / "rep" / "summary.md").read_text()
    rows = _rows(tmp_path / "rep" / "results.csv")
    assert {r["id"] for r in rows} == {"good0", "good1"} and np.all(np.isfinite([float(r["si_sdr"]) for r in rows]))


def test_folder_items_keep_files_that_differ_only_by_extension(tmp_path, caplog):
    from speech_dae.inputs import folder_items

    write_wav(tmp_path / "n" / "a.wav", speech_clip(0, 0.5))
    sf.write(str(tmp_path / "n" / "a.flac"), speech_clip(1, 0.5), SR)
    write_wav(tmp_path / "c" / "a.wav", speech_clip(0, 0.5))
    sf.write(str(tmp_path / "c" / "a.flac"), speech_clip(1, 0.5), SR)
    with caplog.at_level("WARNING"):
        items = folder_items(tmp_path / "n", tmp_path / "c")
    assert [(it.uid, it.noisy.name, it.clean.name) for it in items] == [
        ("a-flac", "a.flac", "a.flac"),
        ("a-wav", "a.wav", "a.flac"),
    ]
    assert "clean references a.flac and a.wav share the relative path a; a.flac is used" in caplog.text


def test_denoise_skips_unreadable_empty_nan_and_short_files(bad_folder, tmp_path):
    from speech_dae.inference.files import denoise_paths

    run, noisy, _ = bad_folder
    before = tree_checksums(noisy)
    summary = denoise_paths(run, [noisy], tmp_path / "den", progress=False)
    skipped = {Path(p).name: why for p, why in summary.skipped}
    for name in ("zero_bytes.wav", "zero_bytes.flac", "zero_bytes.ogg", "truncated.flac"):
        assert "cannot read audio" in skipped[name], name
    for name in ("header_only.wav", "truncated.wav", "huge.wav", "rate_100.wav"):  # the loader's own reasons
        assert skipped[name].startswith(f"{noisy / name}: ") and _bad_files()[name][1] in skipped[name], name
    assert "no samples" in skipped["truncated.ogg"]
    assert "NaN or Inf" in skipped["inf.wav"] and "shorter than one analysis window" in skipped["one_frame.wav"]
    assert {"good0.wav", "good1.wav"} <= {Path(p).name for p in summary.outputs}
    assert tree_checksums(noisy) == before


def test_denoise_skips_a_truncated_flac(bad_folder, tmp_path):
    from speech_dae.inference.files import denoise_paths

    run, noisy, _ = bad_folder
    summary = denoise_paths(run, [noisy / "truncated.flac", noisy / "good0.wav"], tmp_path / "den", progress=False)
    assert [Path(p).name for p, _ in summary.skipped] == ["truncated.flac"]
    assert summary.skipped[0][1] == (
        f"{noisy / 'truncated.flac'}: cannot read audio in the block starting at 0.0 s "
        "(Error : flac decoder lost sync.): corrupt or truncated; copy or export it "
        "again"
    )
    assert [p.name for p in summary.outputs] == ["good0.wav"]
    assert not (tmp_path / "den" / "truncated.flac").exists()
    assert sorted(p.name for p in (tmp_path / "den").iterdir()) == ["good0.wav"]  # no temporary left behind


def _cli_denoise(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "speech_dae", "denoise", *map(str, args), "--no-progress"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_cli_denoise_lists_broken_files_once_each_and_denoises_the_rest(tmp_path, tiny_cfg):
    run = identity_run_dir(tmp_path / "run", tiny_cfg)
    inp = tmp_path / "in"
    y = speech_clip(0, 1.0)
    write_wav(inp / "good.wav", y + noise_clip(0, 1.0))
    sf.write(str(inp / "good.flac"), y, SR, subtype="PCM_16")
    flac, wav = _encoded(y, "FLAC", "PCM_24"), _encoded(y, "WAV", "PCM_16")
    nan = y.copy()
    nan[[100, 2000]] = np.nan
    (inp / "truncated.flac").write_bytes(flac[: len(flac) // 2])
    (inp / "truncated.wav").write_bytes(wav[: len(wav) // 2])
    (inp / "random.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    (inp / "nan.wav").write_bytes(_encoded(nan, "WAV", "FLOAT"))
    before = tree_checksums(inp)
    proc = _cli_denoise(inp, "-o", tmp_path / "out", "--model", run)
    assert proc.returncode == 0, proc.stderr
    lines = stdout_lines(proc)
    skipped = {ln.split(": ")[0]: ln for ln in lines if ln.startswith("skipped ")}
    assert set(skipped) == {f"skipped {inp / n}" for n in ("truncated.flac", "truncated.wav", "random.wav", "nan.wav")}
    assert skipped[f"skipped {inp / 'truncated.flac'}"] == (
        f"skipped {inp / 'truncated.flac'}: cannot read audio in the block starting at 0.0 s (Error : flac decoder "
        "lost sync.): corrupt or truncated; copy or export it again"
    )
    assert skipped[f"skipped {inp / 'truncated.wav'}"] == (
        f"skipped {inp / 'truncated.wav'}: truncated: its header announces 16000 samples per channel, the file "
        f"holds {(len(wav) // 2 - 44) // 2} (an incomplete copy?); copy or export it again"
    )
    assert skipped[f"skipped {inp / 'random.wav'}"] == (
        f"skipped {inp / 'random.wav'}: cannot read audio (Format not recognised.): not a valid WAV/FLAC/OGG, or "
        "corrupt or truncated; copy or export it again"
    )
    assert skipped[f"skipped {inp / 'nan.wav'}"] == (
        f"skipped {inp / 'nan.wav'}: 2 samples are NaN or Inf (block starting at 0.0 s); re-export the file"
    )
    assert all(ln.count(str(inp)) == 1 for ln in skipped.values()), "the path is named once per line"
    assert "denoised 2 file(s)" in proc.stdout
    out = tmp_path / "out" / "in"
    assert sorted(p.name for p in out.iterdir()) == ["good.flac", "good.wav"]
    got, sr = sf.read(str(out / "good.flac"), dtype="float32")
    assert sr == SR and got.shape == y.shape and np.all(np.isfinite(got))
    assert tree_checksums(inp) == before

    proc = _cli_denoise(inp / "truncated.flac", inp / "nan.wav", "-o", tmp_path / "none", "--model", run)
    assert proc.returncode == 2
    assert error_line(proc) == (
        f"error: no file could be denoised (2 skipped; first: {inp / 'truncated.flac'}: "
        "cannot read audio in the block starting at 0.0 s (Error : flac decoder lost sync.): "
        "corrupt or truncated; copy or export it again)"
    )
    assert not (tmp_path / "none").exists() or not any((tmp_path / "none").rglob("*"))


# ------------------------------------------------------------ property based
_GOOD = {
    "wav": _encoded(np.stack([speech_clip(0, 0.3)] * 2, 1), "WAV", "PCM_24"),
    "flac": _encoded(speech_clip(1, 0.3), "FLAC", "PCM_16"),
    "ogg": _encoded(speech_clip(2, 0.3), "OGG", "VORBIS"),
}


@st.composite
def _broken_bytes(draw):
    """(extension, bytes): random bytes, or a valid file truncated or with some bytes overwritten."""
    ext = draw(st.sampled_from(sorted(_GOOD) + ["aiff"]))
    how = draw(st.sampled_from(["random", "truncated", "mutated", "header_mutated"]))
    if how == "random" or ext == "aiff":
        return ext, draw(st.binary(max_size=3000))
    data = bytearray(_GOOD[ext])
    if how == "truncated":
        return ext, bytes(data[: draw(st.integers(0, len(data)))])
    span = 64 if how == "header_mutated" else len(data)
    for pos, value in draw(st.lists(st.tuples(st.integers(0, span - 1), st.integers(0, 255)), min_size=1, max_size=12)):
        data[pos] = value
    return ext, bytes(data)


_FORMATS = [
    ("wav", "WAV", "PCM_16"),
    ("wav", "WAV", "PCM_24"),
    ("wav", "WAV", "PCM_32"),
    ("wav", "WAV", "PCM_U8"),
    ("wav", "WAV", "FLOAT"),
    ("wav", "WAV", "DOUBLE"),
    ("flac", "FLAC", "PCM_16"),
    ("flac", "FLAC", "PCM_24"),
    ("ogg", "OGG", "VORBIS"),
]


@st.composite
def _random_array_file(draw):
    """(extension, bytes) of a random array of a random dtype and shape written with soundfile."""
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int16, np.int32]))
    n = draw(st.integers(0, 6000))
    channels = draw(st.integers(1, 4))
    if np.issubdtype(dtype, np.integer):
        elements = st.integers(np.iinfo(dtype).min, np.iinfo(dtype).max)
    else:
        elements = st.floats(width=32 if dtype == np.float32 else 64, allow_nan=True, allow_infinity=True)
    fill = draw(st.sampled_from([0.0, 0.3, 1e30])) if not np.issubdtype(dtype, np.integer) else 0
    arr = draw(hnp.arrays(dtype, (n, channels), elements=elements, fill=st.just(dtype(fill))))
    ext, fmt, subtype = draw(st.sampled_from(_FORMATS))
    rate = draw(st.sampled_from([8000, 16000, 22050, 44100, 48000, 100]))
    buf = io.BytesIO()
    try:
        sf.write(buf, arr, rate, format=fmt, subtype=subtype)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, AssertionError):  # soundfile asserts on
        pass  # a short write; whatever was written before the failure is a broken file too
    data = buf.getvalue()
    assume(data or n == 0)
    return ext, data


def _check_load(path: Path) -> None:
    try:
        y, _ = load_audio(path, sample_rate=SR)
    except SpeechDAEError:
        return
    assert y.dtype == np.float32 and y.ndim == 1 and y.size > 0 and np.all(np.isfinite(y))


_FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@_FAST
@given(case=st.one_of(_broken_bytes(), _random_array_file()))
def test_load_audio_raises_only_audio_errors_on_random_files(case, tmp_path_factory):
    ext, data = case
    folder = tmp_path_factory.mktemp("load")
    path = folder / f"x.{ext}"
    path.write_bytes(data)
    _check_load(path)
    assert path.read_bytes() == data and [p.name for p in folder.iterdir()] == [f"x.{ext}"]


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    return build_corpus(
        tmp_path_factory.mktemp("small") / "corpus",
        n_train_clean=2,
        n_train_noise=1,
        n_test_clean=1,
        n_test_noise=1,
        clean_s=0.5,
        noise_s=(0.7,),
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    case=st.one_of(_broken_bytes(), _random_array_file()),
    where=st.sampled_from(["train/clean", "train/noise", "test/clean", "test/noise"]),
)
def test_stage01_with_a_random_file_mixed_in_fails_only_with_a_user_error(
    case, where, small_corpus, tmp_path_factory, tiny_cfg
):
    ext, data = case
    root = tmp_path_factory.mktemp("stage01")
    corpus = root / "corpus"
    shutil.copytree(small_corpus, corpus)
    (corpus / where / f"random.{ext}").write_bytes(data)
    before = tree_checksums(corpus)
    cfg = tiny_cfg.replace(**{"mixing.snr_db": [5]})
    try:
        summary = extract_features(cfg, out=root / "out" / "f", data=corpus, progress=False)
    except SpeechDAEError:
        summary = None
    assert tree_checksums(corpus) == before, "stage 01 changed its inputs"
    assert sorted(p.name for p in root.iterdir()) == ["corpus", "out"]
    assert set(os.listdir(root / "out")) <= {"f", "f.partial"}
    if summary is not None:
        rows = _rows(root / "out" / "f" / "manifest.csv")
        used = {Path(r[k]).name for r in rows for k in ("clean_file", "noise_file")}
        skipped = _skipped(root / "out" / "f")
        assert not (f"random.{ext}" in used and f"random.{ext}" in skipped)
        for r in rows:
            assert np.all(np.isfinite(np.load(root / "out" / "f" / "noisy" / f"{r['id']}.npy")))
