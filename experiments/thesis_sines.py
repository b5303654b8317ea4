"""The sine-chord simulation of Lusterman (2016), run on the ``speech_dae`` thesis networks.

E. Lusterman, "A Partitioned Autoencoder for Audio De-Noising", Cooper Union
M.Eng. thesis, 2016, compares on a toy problem (sums of sines at 441, 549, 660
and 881 Hz in white noise at -6 to 6 dB SNR) a supervised one-hidden-layer
network (Liu, Smaragdis & Kim, "Experiments on deep learning for speech
denoising", Interspeech 2014), with and without input batch normalisation, the
semi-supervised partitioned autoencoder (Stowell & Turner, "Denoising without
access to clean data using a partitioned autoencoder", arXiv 1509.05982, 2015)
and the thesis's "Curro" autoencoder. Every network sees single ``|STFT|``
frames (1024-sample Hann frames, hop 512, 513 bins); every ``--eval-every``
iterations the same held-out 1 s noisy chord is denoised (noisy phase,
overlap-add) and scored by its time-domain MSE against the clean chord.

Choices the thesis leaves open: each training frame is an independent
1024-sample chord (``librosa.stft(center=False)``, one frame); the held-out
example uses ``center=True``; magnitudes are scaled by ``2 / 1024``; denoised
magnitudes are clipped at 0; every network but ``shallow`` has input batch
norm; ``curro_sum`` scores the Curro run with ``alpha = 1`` (``S + N``).

Writes ``results.csv``, ``loss.png``, ``time_mse.png`` and ``summary.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import librosa  # noqa: E402

from speech_dae.artifacts import atomic_path  # noqa: E402

SR, N_FFT, HOP = 16000, 1024, 512
FREQS = np.array([441.0, 549.0, 660.0, 881.0])
#: |STFT| scale: a sine of amplitude A peaks at about A (2 / sum of the periodic Hann window).
SCALE = 2.0 / N_FFT
NETWORKS = ("shallow_bn", "shallow", "partitioned", "curro")
BATCH, NOISE_SHARE, LAST_EVALS = 128, 0.25, 4
COLUMNS = ("network", "snr_db", "iteration", "train_loss", "time_mse")


def sine_chords(n, length, rng):
    """Clean signals: sums of sines at :data:`FREQS`, amplitudes U(0.25, 0.75), phases U(0, 2 pi).

    Parameters
    ----------
    n, length : int
        Number of signals and samples per signal (at 16 kHz).
    rng : numpy.random.Generator

    Returns
    -------
    np.ndarray [shape=(n, length)], float64
    """
    amps = rng.uniform(0.25, 0.75, (n, len(FREQS), 1))
    phases = rng.uniform(0.0, 2 * np.pi, (n, len(FREQS), 1))
    t = np.arange(length) / SR
    return np.sum(amps * np.sin(2 * np.pi * FREQS[:, None] * t + phases), axis=1)


def awgn(clean, snr_db, noise):
    """Scale unit white noise to SNR ``snr_db`` against the energy of the whole of ``clean`` (one minibatch).

    Parameters
    ----------
    clean, noise : np.ndarray, same shape
        ``noise`` is standard normal.
    snr_db : float

    Returns
    -------
    np.ndarray, ``noise * sigma`` with ``sigma**2 = mean(clean**2) / 10**(snr_db / 10)``
    """
    return noise * np.sqrt(np.mean(clean**2) / 10 ** (snr_db / 10))


def frame_magnitudes(clips):
    """Scaled ``|STFT|`` of 1024-sample clips (one Hann frame each, ``librosa.stft(center=False)``).

    Returns
    -------
    np.ndarray [shape=(n, 1, 513)], float32
    """
    spec = librosa.stft(clips, n_fft=N_FFT, hop_length=HOP, window="hann", center=False)  # (n, 513, 1)
    return (np.abs(spec) * SCALE).transpose(0, 2, 1).astype(np.float32)


def minibatch(rng, snr_db, noise_share=0.0, batch=BATCH):
    """One training minibatch of independent frames.

    Parameters
    ----------
    rng : numpy.random.Generator
    snr_db : float
    noise_share : float
        Share of noise-only frames (label 1, pure noise), placed first.

    Returns
    -------
    noisy, clean : np.ndarray [shape=(batch, 1, 513)], float32
        Input magnitudes and clean magnitudes (the supervised target).
    labels : np.ndarray [shape=(batch, 1)], float32
    """
    clean = sine_chords(batch, N_FFT, rng)
    noise = awgn(clean, snr_db, rng.standard_normal(clean.shape))
    n_noise = int(round(noise_share * batch))
    clean[:n_noise] = 0.0
    labels = (np.arange(batch) < n_noise).astype(np.float32)[:, None]
    return frame_magnitudes(clean + noise), frame_magnitudes(clean), labels


def eval_example(snr_db, seed, seconds=1.0):
    """The held-out example: one fixed chord (seed ``seed``) plus fixed unit noise (seed ``seed + 1``) at ``snr_db``.

    Returns
    -------
    clean : np.ndarray [shape=(n,)], float64
    spec : np.ndarray [shape=(513, frames)], complex, ``librosa.stft(center=True)`` of the noisy signal
    """
    clean = sine_chords(1, int(SR * seconds), np.random.default_rng(seed))[0]
    noisy = clean + awgn(clean, snr_db, np.random.default_rng(seed + 1).standard_normal(clean.shape))
    return clean, librosa.stft(noisy, n_fft=N_FFT, hop_length=HOP, window="hann", center=True)


def time_mse(mags, spec, clean):
    """Time-domain MSE of denoised magnitudes ``(frames, 1, 513)`` (clipped at 0) with the noisy phase."""
    mag = np.maximum(np.asarray(mags, np.float64).reshape(-1, spec.shape[0]).T, 0.0) / SCALE
    y = librosa.istft(mag * np.exp(1j * np.angle(spec)), hop_length=HOP, n_fft=N_FFT, window="hann", length=len(clean))
    return float(np.mean((y - clean) ** 2))


def build(network, units, penalty, keras):
    """Training graph, ``{name: predict(x)}`` scorers and data settings of ``network``."""
    from speech_dae.models import build_model
    from speech_dae.models.thesis import identity_loss, semi_supervised_trainer

    shape, opt = (1, N_FFT // 2 + 1), keras.optimizers.Adam(1e-3)
    if network.startswith("shallow"):
        model = build_model("shallow", shape, units=units, batch_norm=network == "shallow_bn")
        model.compile(optimizer=opt, loss="mse")
        return model, {network: lambda x: model(x, training=False)}, 0.0
    if network == "partitioned":
        model = build_model("partitioned", shape, units=units, background=0.25, penalty=penalty)
        trainer = semi_supervised_trainer(model, "partitioned", penalty=penalty)
        trainer.compile(optimizer=opt, loss={"recon": "mse", "penalty": identity_loss})
        return trainer, {network: lambda x: model(x, training=False)}, NOISE_SHARE
    code = 2 * round(units * 0.512)  # 2000 -> the thesis's [2048, 2048] + decoder [1024]
    model = build_model("curro", shape, units=[code, code], decoder_units=[code // 2], alpha=0.0)
    trainer = semi_supervised_trainer(model, "curro")
    trainer.compile(optimizer=opt, loss={"recon": "mse"})
    s, _ = model.get_layer("decoded_flat").input
    branches = keras.Model(model.inputs[0], [s, model.get_layer("noise_scale").input])
    return (
        trainer,
        {
            "curro": lambda x: model(x, training=False),  # alpha = 0: S; curro_sum: alpha = 1, S + N
            "curro_sum": lambda x: np.add(*branches(x, training=False)),
        },
        NOISE_SHARE,
    )


def train_run(network, snr_db, args, bar):
    """Train ``network`` at ``snr_db`` for ``args.iterations``; return its result rows."""
    import keras

    keras.utils.set_random_seed(args.seed)
    fit_model, scorers, noise_share = build(network, args.units, args.penalty, keras)
    rng = np.random.default_rng([args.seed, int(round(10 * snr_db)) + 1000])
    clean_ref, spec = eval_example(snr_db, args.seed + 7)
    eval_x = (np.abs(spec) * SCALE).T[:, None, :].astype(np.float32)  # (frames, 1, 513)
    rows, window = [], []
    for it in range(1, args.iterations + 1):
        noisy, clean, labels = minibatch(rng, snr_db, noise_share)
        if noise_share:
            y = {"recon": noisy, **({"penalty": np.zeros(len(noisy), np.float32)} if network == "partitioned" else {})}
            logs = fit_model.train_on_batch([noisy, labels], y, return_dict=True)
        else:
            logs = fit_model.train_on_batch(noisy, clean, return_dict=True)
        window.append(float(logs["loss"]))
        bar.update(1)
        if it % args.eval_every == 0 or it == args.iterations:
            loss = float(np.mean(window))  # mean minibatch loss since the last evaluation
            rows += [(name, snr_db, it, loss, time_mse(f(eval_x), spec, clean_ref)) for name, f in scorers.items()]
            window = []
    return rows


def converged_at(iters, values, tol=0.1):
    """First iteration from which ``values`` stay within ``tol`` of their final value (mean of the last evaluations).

    Returns ``None`` if the last value is still outside (not converged).
    """
    final = np.mean(values[-LAST_EVALS:])
    outside = np.flatnonzero(np.abs(np.asarray(values) - final) > tol * abs(final))
    first = outside[-1] + 1 if len(outside) else 0
    return int(iters[first]) if first < len(iters) else None


def write_outputs(rows, out, args, seconds, n_trained):
    """Write ``results.csv``, ``loss.png``, ``time_mse.png`` and ``summary.md`` (each atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "results.csv") as tmp, open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows([COLUMNS, *[(n, s, i, f"{lo:.6g}", f"{m:.6g}") for n, s, i, lo, m in rows]])
    nets, snrs = list(dict.fromkeys(r[0] for r in rows)), sorted({r[1] for r in rows})
    curve = {}
    for n, s, i, lo, m in rows:
        curve.setdefault((n, s), []).append((i, lo, m))
    curve = {k: np.array(v) for k, v in curve.items()}
    noisy_mse = {
        s: time_mse(np.abs(spec).T * SCALE, spec, clean)  # the noisy input, scored the same way
        for s in snrs
        for clean, spec in [eval_example(s, args.seed + 7)]
    }
    for col, fname, label in ((1, "loss.png", "training loss (window mean)"), (2, "time_mse.png", "time-domain MSE")):
        fig, axes = plt.subplots(1, len(snrs), figsize=(3.4 * len(snrs), 3.2), sharey=col == 2, squeeze=False)
        for ax, s in zip(axes[0], snrs):
            for n in nets:
                if (n, s) in curve and not (col == 1 and n == "curro_sum"):  # curro_sum: curro's run and loss
                    c = curve[n, s]
                    ax.semilogy(c[:, 0], c[:, col], "--" if n == "curro_sum" else "-", label=n, lw=1.2)
            if col == 2:
                ax.axhline(noisy_mse[s], color="grey", ls=":", label="noisy input")
            ax.set(title=f"SNR {s:g} dB", xlabel="iteration")
            ax.grid(alpha=0.3, which="both")
        axes[0, 0].set_ylabel(label)
        axes[0, -1].legend(fontsize=7)
        fig.tight_layout()
        with atomic_path(out / fname) as tmp:
            fig.savefig(tmp, format="png", dpi=args.dpi)
        plt.close(fig)

    def table(title, col, conv=False, extra=()):
        def cell(c):
            return str(converged_at(c[:, 0], c[:, col]) or "no") if conv else f"{np.mean(c[-LAST_EVALS:, col]):.4g}"

        return [
            f"### {title}",
            "",
            "| network | " + " | ".join(f"{s:g} dB" for s in snrs) + " |",
            "|---" * (len(snrs) + 1) + "|",
            *[
                f"| {n} | " + " | ".join(cell(curve[n, s]) if (n, s) in curve else "-" for s in snrs) + " |"
                for n in nets
            ],
            *extra,
            "",
        ]

    md = [
        "# Lusterman (2016) sine-chord simulation",
        "",
        f"`{' '.join(sys.argv)}`: {args.iterations} iterations, minibatch {BATCH}, {args.units} units, partitioned "
        f"lambda {args.penalty:g}, seed {args.seed}; this call trained {n_trained} runs in {seconds / 60:.1f} min.",
        "",
        *table(
            f"Final time-domain MSE (mean of the last {LAST_EVALS} evaluations)",
            2,
            extra=["| noisy input | " + " | ".join(f"{noisy_mse[s]:.4g}" for s in snrs) + " |"],
        ),
        *table("Final training loss (same window)", 1),
        *table("Iterations to converge: training loss stays within 10 % of its final value", 1, conv=True),
        *table("Iterations to converge: time-domain MSE stays within 10 % of its final value", 2, conv=True),
    ]
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text("\n".join(md) + "\n", encoding="utf-8")


def main(argv=None):
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--iterations", type=int, default=2000, help="training iterations per run (default 2000)")
    p.add_argument("--snr", type=float, nargs="+", default=[-6, -3, 0, 3, 6], help="SNRs in dB (one run each)")
    p.add_argument("--networks", nargs="+", choices=NETWORKS, default=list(NETWORKS), help="networks to train")
    p.add_argument("--eval-every", type=int, default=50, help="iterations between evaluations (default 50)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, minibatches and the held-out example")
    p.add_argument("--units", type=int, default=2000, help="hidden units (Curro: code 1.024x, decoder half)")
    p.add_argument("--penalty", type=float, default=0.75, help="partitioned lambda (default 0.75, the thesis code)")
    p.add_argument("--out", type=Path, default=Path("reports/thesis_sines"), help="output folder")
    p.add_argument("--dpi", type=int, default=90, help="figure resolution (default 90)")
    p.add_argument("--resume", action="store_true", help="keep the runs already in OUT/results.csv (same settings)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    from tqdm import tqdm

    t0, rows, csv_path = time.perf_counter(), [], args.out / "results.csv"
    if args.resume and csv_path.exists():
        with open(csv_path, newline="") as fh:
            rows = [(r[0], float(r[1]), int(r[2]), float(r[3]), float(r[4])) for r in list(csv.reader(fh))[1:]]
    runs = [(n, float(s)) for s in args.snr for n in args.networks if (n, float(s)) not in {r[:2] for r in rows}]
    done = 0
    with tqdm(total=len(runs) * args.iterations, disable=args.no_progress, unit="it") as bar:
        for network, snr_db in runs:
            bar.set_description(f"{network} {snr_db:g} dB")
            t_run = time.perf_counter()
            rows += train_run(network, snr_db, args, bar)
            tqdm.write(f"{network} at {snr_db:g} dB: {time.perf_counter() - t_run:.0f} s")
            done += 1
            write_outputs(rows, args.out, args, time.perf_counter() - t0, done)  # partial results survive an interrupt
    if rows and not runs:  # --resume with nothing left to train: rewrite figures and summary
        write_outputs(rows, args.out, args, time.perf_counter() - t0, 0)
    print(f"wrote {args.out} in {(time.perf_counter() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
