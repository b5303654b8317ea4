"""Stage ordering checks, reconstruction (overlap-average, Denoiser, stage 04) and a tiny end-to-end run.

Stage refusals are tested through the package functions (fast) and through
the scripts (exit status 2, one ``error:`` line on stderr). The end-to-end
test runs the four scripts once on a tiny corpus (one epoch, tiny model)
and checks every artifact of the output contract.
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from conftest import (
    PINNED_SETS,
    SCRIPTS,
    SR,
    TINY_SETS,
    build_corpus,
    error_line,
    identity_run_dir,
    run_script,
    si_sdr_db,
    speech_clip,
    stdout_lines,
    tree_checksums,
    write_wav,
)

from speech_dae.config import load_config
from speech_dae.errors import ArtifactError, AudioError
from speech_dae.folders import load_dataset
from speech_dae.framing import gather_patches, patch_starts
from speech_dae.stages.dataset import build_dataset
from speech_dae.stages.extract import extract_features

STAGE01, STAGE02, STAGE03 = SCRIPTS[:3]


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ======================================================== stage order: package
def test_02_refuses_missing_features(tmp_path, tiny_cfg):
    with pytest.raises(ArtifactError) as err:
        build_dataset(tiny_cfg, features=tmp_path / "features" / "nope", out=tmp_path / "ds", progress=False)
    assert STAGE01 in str(err.value) and "does not exist" in str(err.value)
    assert not (tmp_path / "ds").exists()


def test_02_refuses_incomplete_or_interrupted_features(tmp_path, tiny_cfg):
    feats = tmp_path / "features" / "x"
    feats.mkdir(parents=True)
    (feats / "manifest.csv").write_text("id,split\n")
    with pytest.raises(ArtifactError) as err:
        build_dataset(tiny_cfg, features=feats, out=tmp_path / "ds", progress=False)
    assert STAGE01 in str(err.value) and "params.json" in str(err.value)
    half = tmp_path / "features" / "y"
    (tmp_path / "features" / "y.partial").mkdir()
    with pytest.raises(ArtifactError) as err:
        build_dataset(tiny_cfg, features=half, out=tmp_path / "ds", progress=False)
    assert STAGE01 in str(err.value) and "interrupted" in str(err.value)


def test_02_refuses_features_whose_npy_files_are_missing(tmp_path, built, tiny_cfg):
    feats = tmp_path / "features"
    shutil.copytree(built.features, feats)
    victim = next((feats / "noisy").glob("*.npy"))
    victim.unlink()
    with pytest.raises(ArtifactError) as err:
        build_dataset(tiny_cfg, features=feats, out=tmp_path / "ds", progress=False)
    assert STAGE01 in str(err.value) and victim.stem in str(err.value)


def test_03_refuses_missing_or_incomplete_dataset(tmp_path, built, tiny_cfg):
    from speech_dae.stages.train import train

    with pytest.raises(ArtifactError) as err:
        train(
            tiny_cfg,
            dataset=tmp_path / "datasets" / "nope",
            run="r",
            models_dir=tmp_path / "models",
            logs_dir=tmp_path / "logs",
            progress=False,
        )
    assert STAGE02 in str(err.value)
    ds = tmp_path / "ds"
    shutil.copytree(built.dataset, ds)
    (ds / "windows_val.npy").unlink()
    with pytest.raises(ArtifactError) as err:
        train(tiny_cfg, dataset=ds, run="r", models_dir=tmp_path / "models", logs_dir=tmp_path / "logs", progress=False)
    assert STAGE02 in str(err.value) and "windows_val.npy" in str(err.value)
    assert not (tmp_path / "models" / "r").exists()


def test_04_refuses_missing_or_incomplete_model(tmp_path, tiny_cfg):
    from speech_dae.inference import Denoiser
    from speech_dae.stages.reconstruct import reconstruct

    with pytest.raises(ArtifactError) as err:
        reconstruct(
            tiny_cfg,
            model_dir=tmp_path / "models" / "nope",
            out_root=tmp_path / "o",
            images_root=tmp_path / "i",
            progress=False,
        )
    assert STAGE03 in str(err.value)
    run = tmp_path / "models" / "half"
    run.mkdir(parents=True)
    (run / "run.json").write_text("{}")
    with pytest.raises(ArtifactError) as err:
        Denoiser(run)
    assert STAGE03 in str(err.value) and "model.keras" in str(err.value)
    assert not (tmp_path / "o").exists()


@pytest.fixture
def stale(tmp_path, tiny_cfg):
    """features/ and datasets/ in tmp_path, then features rebuilt with other parameters (--force)."""
    corpus = build_corpus(tmp_path / "corpus", n_train_clean=3, n_train_noise=2, clean_s=0.5)
    feats, ds = tmp_path / "features" / "f", tmp_path / "datasets" / "f"
    extract_features(tiny_cfg, out=feats, data=corpus, progress=False)
    build_dataset(tiny_cfg, features=feats, out=ds, progress=False)
    load_dataset(ds)  # current: no error
    other = tiny_cfg.replace(**{"features.n_fft": 256, "features.win_length": 256})
    with pytest.raises(ArtifactError) as err:  # another configuration needs --force
        extract_features(other, out=feats, data=corpus, progress=False)
    assert "--force" in str(err.value)
    extract_features(other, out=feats, data=corpus, force=True, progress=False)
    return tmp_path, feats, ds


def test_03_refuses_a_stale_dataset(stale, tiny_cfg):
    from speech_dae.stages.train import train

    root, feats, ds = stale
    with pytest.raises(ArtifactError) as err:
        load_dataset(ds)
    assert "stale" in str(err.value) and STAGE02 in str(err.value)
    with pytest.raises(ArtifactError) as err:
        train(tiny_cfg, dataset=ds, run="r", models_dir=root / "models", logs_dir=root / "logs", progress=False)
    assert "stale" in str(err.value) and STAGE02 in str(err.value)
    # the message's advice works: rebuilding the dataset with --force makes it current again
    build_dataset(tiny_cfg, features=feats, out=ds, force=True, progress=False)
    assert load_dataset(ds)["n_bins"] == 129


# ===================================================== stage order: scripts
def _assert_refused(proc, *words):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = error_line(proc)
    for w in words:
        assert w in line, line
    assert not any(ln.startswith("next:") for ln in stdout_lines(proc))
    return line


@pytest.mark.slow
def test_02_script_on_missing_features_exits_2_naming_stage_01(tmp_path):
    proc = run_script(STAGE02, "--features", "features/nope", "--out", "datasets/nope", cwd=tmp_path)
    _assert_refused(proc, STAGE01)
    assert not (tmp_path / "datasets").exists()


@pytest.mark.slow
def test_03_script_on_missing_dataset_exits_2_naming_stage_02(tmp_path):
    proc = run_script(STAGE03, "--dataset", "datasets/nope", "--run", "r", cwd=tmp_path)
    _assert_refused(proc, STAGE02)
    assert not (tmp_path / "models" / "r").exists()


@pytest.mark.slow
def test_04_script_on_missing_model_exits_2_naming_stage_03(tmp_path):
    proc = run_script(SCRIPTS[3], "--model", "models/nope", cwd=tmp_path)
    _assert_refused(proc, STAGE03)


@pytest.mark.slow
def test_03_script_on_stale_dataset_exits_2(stale):
    root, feats, ds = stale
    proc = run_script(
        STAGE03, "--dataset", str(ds), "--run", "r", *[a for s in TINY_SETS for a in ("--set", s)], cwd=root
    )
    _assert_refused(proc, "stale", STAGE02)


@pytest.mark.slow
def test_01_script_with_nothing_usable_exits_2(tmp_path):
    corpus = build_corpus(tmp_path / "corpus", n_train_clean=0)
    (corpus / "train" / "clean").mkdir(parents=True)
    (corpus / "train" / "clean" / "junk.wav").write_bytes(b"RIFF....not a wav at all" * 50)
    before = tree_checksums(corpus)
    proc = run_script(STAGE01, "--data", str(corpus), "--out", "features/x", cwd=tmp_path)
    _assert_refused(proc, "no usable")
    assert tree_checksums(corpus) == before
    assert not (tmp_path / "features" / "x").exists()


@pytest.mark.slow
def test_bad_set_exits_2_listing_valid_keys(tmp_path):
    proc = run_script(STAGE02, "--features", "f", "--set", "dataset.contxt=3", cwd=tmp_path)
    _assert_refused(proc, "contxt", "context", "stride")


def _script(name: str):
    """A numbered script imported as a module (its ``main``, ``parser`` and ``run``), for in-process CLI checks."""
    from conftest import load_script

    return load_script(name)


@pytest.mark.parametrize(
    "script, argv, words",
    [
        (STAGE02, ["--features", "features/nope", "--out", "datasets/nope"], [STAGE01]),
        (STAGE03, ["--dataset", "datasets/nope", "--run", "r"], [STAGE02]),
        (SCRIPTS[3], ["--model", "models/nope"], [STAGE03]),
        (STAGE02, ["--features", "f", "--set", "dataset.contxt=3"], ["contxt", "context", "stride"]),
    ],
)
def test_scripts_in_process_exit_2_with_one_error_line(script, argv, words, tmp_path, monkeypatch, capsys):
    """The fast counterpart of the subprocess refusals above: exit status 2, one ``error:`` line, no ``next:``."""
    monkeypatch.chdir(tmp_path)
    mod = _script(script)
    assert mod.run(mod.main, mod.parser, [*argv, "--no-progress"]) == 2
    cap = capsys.readouterr()
    err = [ln for ln in cap.err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), cap.err
    assert all(w in err[0] for w in words), err[0]
    assert not any(ln.startswith("next:") for ln in cap.out.splitlines())
    assert not (tmp_path / "datasets").exists() and not (tmp_path / "models").exists()


# ============================================================ stage 03 in-process
def test_train_type1_in_process_then_up_to_date_and_usable(built, tmp_path):
    from speech_dae.inference import Denoiser
    from speech_dae.stages.train import train

    cfg = built.cfg.replace(**{"model.name": "type1"})
    kw = dict(
        dataset=built.dataset, run="t1", models_dir=tmp_path / "models", logs_dir=tmp_path / "logs", progress=False
    )
    summary = train(cfg, **kw)
    run = tmp_path / "models" / "t1"
    assert summary.run_dir == run and not summary.up_to_date
    info = json.loads((run / "run.json").read_text())
    assert info["model"] == "type1" and info["hparams"]["filters"] == [8, 4] and info["epochs_run"] == 1
    assert info["dataset_fingerprint"] == load_dataset(built.dataset)["fingerprint"]
    assert "trained type1" in summary.lines()[0]
    again = train(cfg, **kw)
    assert again.up_to_date and "up to date" in again.lines()[0]
    y = speech_clip(2, 0.5)[:7001]
    out = Denoiser(run)(y)
    assert out.shape == y.shape and np.all(np.isfinite(out))


def test_tiny_run_contract_then_reconstruct_in_process(tiny_run, tmp_path):
    """The fast counterpart of the end-to-end scripts: stage 03 and 04 artifacts of the session's tiny run."""
    from speech_dae.stages.reconstruct import reconstruct

    built, run = tiny_run.built, tiny_run.run_dir
    for name in ("model.keras", "run.json", "norm.npz"):
        assert (run / name).is_file(), name
    info = json.loads((run / "run.json").read_text())
    assert info["model"] == "type2" and info["epochs_run"] == 1 and info["hparams"]["units"] == [16, 8]
    assert info["context"] == 11 and info["n_bins"] == 257 and info["sample_rate"] == SR
    assert np.isfinite(info["best_val_loss"])
    with np.load(run / "norm.npz") as a, np.load(built.dataset / "norm.npz") as b:
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k])
    log_rows = _rows(tiny_run.logs_dir / f"{run.name}.csv")
    assert len(log_rows) == 1 and {"loss", "val_loss"} <= set(log_rows[0])
    assert not (tiny_run.models_dir / f"{run.name}.partial").exists()

    before = tree_checksums(run)
    reconstruct(
        built.cfg, model_dir=run, out_root=tmp_path / "outputs", images_root=tmp_path / "images", progress=False
    )
    assert tree_checksums(run) == before
    out, img = tmp_path / "outputs" / run.name, tmp_path / "images" / run.name
    test_rows = [r for r in _rows(built.features / "manifest.csv") if r["split"] == "test"]
    assert test_rows and sorted(m["id"] for m in _rows(out / "metrics.csv")) == sorted(r["id"] for r in test_rows)
    for r in test_rows:
        wav, sr = sf.read(out / f"{r['id']}_denoised.wav", dtype="float32")
        mix, _ = sf.read(built.features / "mixtures" / f"{r['id']}.wav", dtype="float32")
        assert sr == SR and wav.size == mix.size and np.all(np.isfinite(wav)) and np.any(wav != 0)
        assert (img / f"{r['id']}.png").stat().st_size > 1000


def test_training_budgets_limit_steps_validation_patches_and_time(built, tmp_path):
    from speech_dae.stages.train import train

    cfg = built.cfg.replace(
        **{
            "model.name": "type2",
            "training.epochs": 4,
            "training.steps_per_epoch": 1,
            "training.val_max_patches": 3,
            "training.max_minutes": 1e-9,
        }
    )
    s = train(
        cfg,
        dataset=built.dataset,
        run="budget",
        models_dir=tmp_path / "models",
        logs_dir=tmp_path / "logs",
        progress=False,
    )
    # the budget is crossed by the first batch: one (one-step) epoch, validated on 3 patches, then stop
    assert s.info.epochs_run == 1 and s.info.best_epoch == 1
    assert s.info.stop_reason == "time budget of 1e-09 min reached"
    assert s.info.val_patches == 3 and s.info.training["steps_per_epoch"] == 1
    assert (s.run_dir / "model.keras").is_file()


def test_patch_sequence_max_batches_draws_a_fresh_shuffle_each_epoch():
    from speech_dae.framing import even_indices
    from speech_dae.training.batches import PatchSequence

    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    seq = PatchSequence(x, x, np.arange(18), context=2, batch_size=4, shuffle=True, seed=0, max_batches=2)
    assert len(seq) == 2
    first = np.concatenate([seq[i][0][:, 0, 0] for i in range(2)])
    seq.on_epoch_end()
    second = np.concatenate([seq[i][0][:, 0, 0] for i in range(2)])
    assert first.shape == second.shape == (8,) and not np.array_equal(first, second)
    assert len(PatchSequence(x, x, np.arange(18), context=2, batch_size=4, shuffle=False, seed=0)) == 5
    w = np.arange(100, 200)
    assert w[even_indices(w.size, 5)].tolist() == [100, 125, 150, 174, 199]  # np.linspace(0, 99, 5) rounds 74.25 down
    assert even_indices(3, None).tolist() == even_indices(3, 7).tolist() == [0, 1, 2] and even_indices(3, 0).size == 0


# ====================================================== reconstruction parts
@pytest.mark.parametrize("hop", [1, 2, 3, 5, 11])
@pytest.mark.parametrize("n_frames", [11, 12, 57])
def test_overlap_average_of_identity_patches_returns_the_sequence(hop, n_frames):
    from speech_dae.framing import overlap_average

    seq = np.random.default_rng(n_frames).normal(size=(n_frames, 6)).astype(np.float32)
    starts = patch_starts(n_frames, 11, hop)
    patches = gather_patches(seq, starts, 11)
    out = overlap_average(patches, starts, n_frames)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, seq)
    weighted = overlap_average(patches, starts, n_frames, window=np.hanning(13)[1:-1])
    np.testing.assert_allclose(weighted, seq, rtol=1e-6, atol=1e-6)


def test_overlap_average_averages_the_covering_patches():
    from speech_dae.framing import overlap_average

    starts = np.array([0, 2, 4])
    patches = np.stack([np.full((4, 1), float(k)) for k in range(3)]).astype(np.float32)
    out = overlap_average(patches, starts, 9)[:, 0]
    # frame: 0,1 <- p0; 2,3 <- p0,p1; 4,5 <- p1,p2; 6,7 <- p2; 8 uncovered
    np.testing.assert_allclose(out, [0, 0, 0.5, 0.5, 1.5, 1.5, 2, 2, 0])


def test_overlap_average_long_chunks_match_a_direct_sum():
    """The bincount path (context > n_bins, waveform chunks) against a plain per-patch loop."""
    from speech_dae.framing import overlap_average

    rng = np.random.default_rng(1)
    n, chunk = 5000, 512
    starts = patch_starts(n, chunk, chunk // 2)
    patches = rng.normal(size=(starts.size, chunk, 2)).astype(np.float32)
    w = np.hanning(chunk + 2)[1:-1]
    acc, norm = np.zeros((n, 2)), np.zeros(n)
    for p, s in zip(patches, starts):
        acc[s : s + chunk] += w[:, None] * p
        norm[s : s + chunk] += w
    np.testing.assert_allclose(overlap_average(patches, starts, n, w), acc / norm[:, None], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module", params=["logmag", "fbank"])
def identity_run(request, tmp_path_factory):
    cfg = load_config(overrides=[*PINNED_SETS, f"features.type={request.param}", "reconstruct.patch_hop=1"])
    return identity_run_dir(tmp_path_factory.mktemp("idrun") / "models" / "ident", cfg), cfg


@pytest.mark.parametrize("patch_hop", [1, 4, 11])
def test_denoiser_with_an_identity_model_returns_its_input(identity_run, patch_hop):
    from speech_dae.inference import Denoiser

    run, _ = identity_run
    den = Denoiser(run, patch_hop=patch_hop)
    y = speech_clip(1, 1.0)[:15999]
    feats = den.fx(y)
    np.testing.assert_allclose(den.denoise_features(feats), feats, atol=1e-4)
    out = den(y)
    assert out.shape == y.shape and out.dtype == np.float32
    assert si_sdr_db(y, out) > 40


@pytest.fixture(scope="module")
def waveform_identity_run(tmp_path_factory):
    cfg = load_config(overrides=[*PINNED_SETS, "features.type=waveform", "features.chunk_size=512"])
    return identity_run_dir(tmp_path_factory.mktemp("wave") / "ident", cfg, context=512)


@pytest.mark.parametrize("n", [300, 512, 16000, 16001])
def test_waveform_identity_model_returns_its_input_by_overlap_add(waveform_identity_run, n):
    """Chunks every chunk_size // 2 with Hann weights: the identity model gives back the input (SI-SDR > 60 dB)."""
    from speech_dae.inference import Denoiser

    den = Denoiser(waveform_identity_run, patch_hop=4)
    assert den.patch_hop == 256 and den.window.shape == (512,)
    y = speech_clip(2, 1.1)[:n]
    out = den(y)
    assert out.shape == y.shape and out.dtype == np.float32
    assert si_sdr_db(y, out) > 60


def test_denoiser_handles_inputs_shorter_than_one_patch(identity_run):
    from speech_dae.inference import Denoiser

    den = Denoiser(identity_run[0])
    y = speech_clip(0, 1.0)[8000 : 8000 + 900]  # 8 frames < context 11
    assert den.fx(y).shape[0] < den.context
    out = den(y)
    assert out.shape == y.shape and si_sdr_db(y, out) > 40


def test_denoiser_patch_hop_larger_than_context_still_covers_every_frame(identity_run):
    from speech_dae.inference import Denoiser

    den = Denoiser(identity_run[0], patch_hop=16)
    feats = den.fx(speech_clip(1, 1.0))
    np.testing.assert_allclose(den.denoise_features(feats), feats, atol=1e-4)


def test_reconstruct_writes_wav_of_the_input_length_image_and_metrics(identity_run, tmp_path):
    from speech_dae.stages.reconstruct import reconstruct

    run, cfg = identity_run
    noisy_dir, clean_dir = tmp_path / "noisy", tmp_path / "clean"
    y = speech_clip(0, 0.7)[:11111]
    noise = np.random.default_rng(0).normal(0, 0.01, y.size).astype(np.float32)
    write_wav(noisy_dir / "a.wav", y + noise, subtype="FLOAT")
    write_wav(clean_dir / "a.wav", y, subtype="FLOAT")
    write_wav(noisy_dir / "sub" / "b.wav", speech_clip(1, 0.5)[:7777], subtype="FLOAT")  # no reference
    before = tree_checksums(tmp_path)
    summary = reconstruct(
        cfg,
        model_dir=run,
        inputs=noisy_dir,
        clean=clean_dir,
        out_root=tmp_path / "outputs",
        images_root=tmp_path / "images",
        progress=False,
    )
    after = tree_checksums(tmp_path)
    assert {k: v for k, v in after.items() if k.startswith(("noisy", "clean"))} == before
    out_a, sr = sf.read(tmp_path / "outputs" / "ident" / "a_denoised.wav", dtype="float32")
    out_b, _ = sf.read(tmp_path / "outputs" / "ident" / "sub-b_denoised.wav", dtype="float32")
    assert sr == SR and out_a.size == 11111 and out_b.size == 7777
    assert (tmp_path / "images" / "ident" / "a.png").stat().st_size > 1000
    assert (tmp_path / "images" / "ident" / "sub-b.png").is_file()
    rows = _rows(tmp_path / "outputs" / "ident" / "metrics.csv")
    assert [r["id"] for r in rows] == ["a"]
    # identity model: output ~ input, so the scores are the input's scores
    assert float(rows[0]["si_sdr_out"]) == pytest.approx(float(rows[0]["si_sdr_in"]), abs=0.5)
    assert float(rows[0]["si_sdr_in"]) == pytest.approx(si_sdr_db(y, y + noise), abs=0.05)
    assert len(summary.rows) == 2


def test_reconstruct_on_missing_input_raises_audio_error(identity_run, tmp_path):
    from speech_dae.stages.reconstruct import reconstruct

    run, cfg = identity_run
    with pytest.raises(AudioError, match="neither"):
        reconstruct(
            cfg,
            model_dir=run,
            inputs=tmp_path / "nothing.wav",
            out_root=tmp_path / "o",
            images_root=tmp_path / "i",
            progress=False,
        )


# ============================================================ end to end
@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    """Run 01 -> 02 -> 03 -> 04 (and 01 again) as subprocesses in a fresh folder."""
    root = tmp_path_factory.mktemp("e2e")
    corpus = build_corpus(root / "corpus", n_train_clean=3, n_train_noise=2, n_test_clean=1, n_test_noise=1)
    before = tree_checksums(corpus)
    sets = [a for s in TINY_SETS for a in ("--set", s)]
    stage01 = ("--data", "corpus", "--feature", "logmag", "--snr", "0", "10", "--out", "features/tiny", *sets)
    procs = {}
    procs["01"] = run_script(STAGE01, *stage01, cwd=root)
    procs["02"] = run_script(STAGE02, "--features", "features/tiny", "--out", "datasets/tiny", *sets, cwd=root)
    procs["03"] = run_script(
        STAGE03,
        "--dataset",
        "datasets/tiny",
        "--model",
        "type2",
        "--run",
        "tiny_type2",
        "--epochs",
        "1",
        *sets,
        cwd=root,
    )
    procs["04"] = run_script(SCRIPTS[3], "--model", "models/tiny_type2", *sets, cwd=root)
    procs["05"] = run_script(
        SCRIPTS[4],
        "--models",
        "models/tiny_type2",
        "--baselines",
        "wiener",
        "--metrics",
        "si_sdr",
        "stoi",
        "pesq",
        "--out",
        "reports/tiny",
        *sets,
        cwd=root,
    )
    procs["01again"] = run_script(STAGE01, *stage01, cwd=root)
    procs["02again"] = run_script(STAGE02, "--features", "features/tiny", "--out", "datasets/tiny", *sets, cwd=root)
    return root, procs, before


def _ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["01", "02", "03", "04", "05", "01again", "02again"])
def test_e2e_every_stage_succeeds_and_ends_with_next(e2e, stage):
    _, procs, _ = e2e
    _ok(procs[stage])
    assert stdout_lines(procs[stage])[-1].startswith("next:"), procs[stage].stdout


@pytest.mark.slow
def test_e2e_next_lines_chain_the_stages(e2e):
    _, procs, _ = e2e
    nxt = {k: stdout_lines(p)[-1] for k, p in procs.items() if p.returncode == 0}
    assert "02_build_dataset.py --features features/tiny" in nxt["01"]
    assert "03_train_autoencoder.py --dataset datasets/tiny" in nxt["02"]
    assert "04_reconstruct.py --model models/tiny_type2" in nxt["03"]
    assert "reports/tiny/summary.md" in nxt["05"]


@pytest.mark.slow
def test_e2e_evaluate_contract(e2e):
    root, procs, _ = e2e
    _ok(procs["05"])
    rep = root / "reports" / "tiny"
    rows = _rows(rep / "results.csv")
    assert sorted({r["system"] for r in rows}) == ["noisy", "tiny_type2", "wiener"]
    assert len(rows) == 2 * 3  # 2 test mixtures x 3 systems
    assert all(np.isfinite(float(r["si_sdr"])) and 0 <= float(r["stoi"]) <= 1 for r in rows)
    text = (rep / "summary.md").read_text()
    assert "tiny_type2" in text and "±" in text and "+10 dB" in text
    assert (rep / "metrics_by_snr.png").stat().st_size > 5000
    assert not (root / "reports" / "tiny.partial").exists()


@pytest.mark.slow
def test_e2e_rerun_of_01_and_02_is_up_to_date(e2e):
    root, procs, _ = e2e
    _ok(procs["01again"])
    assert "up to date" in procs["01again"].stdout
    assert "up to date" in procs["02again"].stdout


@pytest.mark.slow
def test_e2e_inputs_are_never_modified(e2e):
    root, _, before = e2e
    assert tree_checksums(root / "corpus") == before


@pytest.mark.slow
def test_e2e_features_contract(e2e):
    root, procs, _ = e2e
    _ok(procs["01"])
    f = root / "features" / "tiny"
    for name in ("params.json", "manifest.csv", "skipped.csv"):
        assert (f / name).is_file(), name
    params = json.loads((f / "params.json").read_text())
    rows = _rows(f / "manifest.csv")
    assert params["counts"] == {s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")}
    assert params["counts"] == {"train": 4, "val": 2, "test": 2}  # 2/1/1 clean files x 2 SNRs
    assert params["snr_db"] == [0.0, 10.0] and params["sample_rate"] == SR and params["n_bins"] == 257
    assert _rows(f / "skipped.csv") == []
    for r in rows:
        noisy, clean = np.load(f / "noisy" / f"{r['id']}.npy"), np.load(f / "clean" / f"{r['id']}.npy")
        assert noisy.shape == clean.shape == (int(r["n_frames"]), 257) and noisy.dtype == np.float32
        mix, sr = sf.read(f / "mixtures" / f"{r['id']}.wav", dtype="float32")
        assert sr == SR and mix.size == int(r["n_samples"]) == SR  # 1 s clips
        assert float(r["snr_db"]) in (0.0, 10.0)
    assert {p.stem for p in (f / "noisy").glob("*.npy")} == {r["id"] for r in rows}
    assert {p.stem for p in (f / "mixtures").glob("*.wav")} == {r["id"] for r in rows}


@pytest.mark.slow
def test_e2e_dataset_contract(e2e):
    root, procs, _ = e2e
    _ok(procs["02"])
    d = root / "datasets" / "tiny"
    for split in ("train", "val", "test"):
        for kind in ("x", "y", "windows"):
            assert (d / f"{kind}_{split}.npy").is_file(), f"{kind}_{split}.npy"
    info = json.loads((d / "dataset.json").read_text())
    assert info["context"] == 11 and info["n_bins"] == 257
    with np.load(d / "norm.npz") as z:
        assert set(z.files) >= {"x_mean", "x_std", "y_mean", "y_std"} and z["x_mean"].shape == (257,)


@pytest.mark.slow
def test_e2e_model_contract(e2e):
    root, procs, _ = e2e
    _ok(procs["03"])
    run = root / "models" / "tiny_type2"
    for name in ("model.keras", "run.json", "norm.npz"):
        assert (run / name).is_file(), name
    info = json.loads((run / "run.json").read_text())
    assert info["model"] == "type2" and info["epochs_run"] == 1 and info["hparams"]["units"] == [16, 8]
    assert info["context"] == 11 and info["n_bins"] == 257 and info["sample_rate"] == SR
    assert np.isfinite(info["best_val_loss"])
    with np.load(run / "norm.npz") as a, np.load(root / "datasets" / "tiny" / "norm.npz") as b:
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k])
    log_rows = _rows(root / "model_logs" / "tiny_type2.csv")
    assert len(log_rows) == 1 and {"loss", "val_loss"} <= set(log_rows[0])
    assert list((root / "model_logs" / "tiny_type2").rglob("events.out.tfevents*")), "no TensorBoard events"
    assert not (root / "models" / "tiny_type2.partial").exists()


@pytest.mark.slow
def test_e2e_reconstruct_contract(e2e):
    root, procs, _ = e2e
    _ok(procs["04"])
    out, img = root / "outputs" / "tiny_type2", root / "images" / "tiny_type2"
    test_rows = [r for r in _rows(root / "features" / "tiny" / "manifest.csv") if r["split"] == "test"]
    assert len(test_rows) == 2
    metrics = _rows(out / "metrics.csv")
    assert sorted(m["id"] for m in metrics) == sorted(r["id"] for r in test_rows)
    for m in metrics:
        assert all(np.isfinite(float(m[k])) for k in ("snr_in", "snr_out", "si_sdr_in", "si_sdr_out"))
    for r in test_rows:
        wav, sr = sf.read(out / f"{r['id']}_denoised.wav", dtype="float32")
        mix, _ = sf.read(root / "features" / "tiny" / "mixtures" / f"{r['id']}.wav", dtype="float32")
        assert sr == SR and wav.size == mix.size
        assert np.all(np.isfinite(wav)) and np.any(wav != 0)
        assert (img / f"{r['id']}.png").stat().st_size > 1000


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_help_exits_0(script, tmp_path):
    proc = run_script(script, "--help", cwd=tmp_path, progress_flag=False)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout and "--set" in proc.stdout and "--no-progress" in proc.stdout
