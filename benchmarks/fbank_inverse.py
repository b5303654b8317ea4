#!/usr/bin/env python3
"""What the fbank inverse's framing approximation costs, measured with oracle (clean) features.

The ``fbank`` features follow the seed: ``python_speech_features`` filterbank energies of 16 ms
*rectangular* frames. Their inverse (:meth:`speech_dae.features.FeatureExtractor.to_audio`) turns the
ratio of denoised to noisy energies into a gain per mel band and applies it to the noisy signal's
32 ms *Hann* STFT (``n_fft`` 512, the synthesis frames). The two framings differ, so even perfect
features do not give the ideal gains of the synthesis frames. Fed the *clean* fbank features of each
test mixture (an oracle model), three ways of applying them are compared:

1. today's inverse: fbank gains on the 32 ms Hann STFT;
2. the same gains on a 16 ms Hann STFT (``win_length`` 256): the frame length of the features;
3. the gains the same filterbank gives on the 32 ms Hann STFT itself (clean / noisy band energies of
   the synthesis frames): the ceiling of a mel-band gain on that STFT, i.e. a consistent framing.

The gap between 1 and 3 is the cost of the approximation; 2 shows that matching the frame length
alone does not remove it. Writes section ``fbank-inverse`` of ``benchmarks/BENCHMARKS.md``.

    python benchmarks/fbank_inverse.py --features WORK/features/best --files 40
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import machine_line, publish  # noqa: E402
from speech_dae.audio import read_mono  # noqa: E402
from speech_dae.config import load_config  # noqa: E402
from speech_dae.features import FeatureExtractor, mel_gain_to_stft_gain  # noqa: E402
from speech_dae.inputs import manifest_items  # noqa: E402
from speech_dae.metrics import pesq_wb, si_sdr  # noqa: E402
from speech_dae.scores import ci95  # noqa: E402
from speech_dae.stages.evaluate import select_items  # noqa: E402

VARIANTS = (
    "fbank gains on the 32 ms Hann STFT (the inverse as it is)",
    "fbank gains on a 16 ms Hann STFT",
    "band gains of the 32 ms Hann STFT itself (consistent ceiling)",
)


def oracle_outputs(fx: FeatureExtractor, fx16: FeatureExtractor, noisy: np.ndarray, clean: np.ndarray) -> list:
    """The three oracle reconstructions of ``noisy`` from ``clean`` (see the module docstring)."""
    out = [fx.to_audio(fx(clean), noisy, max_gain=None), fx16.to_audio(fx16(clean), noisy, max_gain=None)]
    S_noisy, S_clean, W = fx.stft(noisy), fx.stft(clean), fx.mel_weights
    e_noisy, e_clean = (np.abs(S_noisy) ** 2) @ W.T, (np.abs(S_clean) ** 2) @ W.T
    gain = np.sqrt(mel_gain_to_stft_gain(np.where(e_noisy > 0, e_clean / np.maximum(e_noisy, 1e-30), 1.0), W))
    out.append(fx.istft(S_noisy * gain, length=noisy.size))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", required=True, help="a stage-01 folder at 16 kHz: its test mixtures are used")
    ap.add_argument("--files", type=int, default=40, help="test mixtures, evenly spaced (default 40)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    fdir = Path(args.features)
    test = manifest_items(fdir)
    snrs = sorted({it.snr_db for it in test}, key=float)
    per = max(1, args.files // len(snrs))  # the same number of mixtures at every input SNR, evenly spaced
    ids = [it.uid for it in select_items(test, per)]
    cfg = load_config(overrides=["features.type=fbank"]).features
    fx = FeatureExtractor(cfg, 16000)
    fx16 = FeatureExtractor(dataclasses.replace(cfg, win_length=cfg.fbank_win_length), 16000)
    scores = {v: ([], []) for v in VARIANTS}
    noisy_scores = ([], [])
    for uid in ids:
        noisy, clean = read_mono(fdir / "mixtures" / f"{uid}.wav"), read_mono(fdir / "references" / f"{uid}.wav")
        noisy_scores[0].append(si_sdr(clean, noisy))
        noisy_scores[1].append(pesq_wb(clean, noisy, sample_rate=16000))
        for v, y in zip(VARIANTS, oracle_outputs(fx, fx16, noisy, clean)):
            scores[v][0].append(si_sdr(clean, y))
            scores[v][1].append(pesq_wb(clean, y, sample_rate=16000))

    def cell(values, d):
        mean, half, _ = ci95(values)
        return f"{mean:.{d}f} ± {half:.{d}f}"

    md = [
        "### The fbank inverse with oracle features",
        "",
        f"Command: `python benchmarks/fbank_inverse.py --features WORK/features/best --files {args.files}` "
        "(the corpus's stage-01 folder of `benchmarks/corpus_table.py`)  ",
        f"Machine: {machine_line()}  ",
        f"{len(ids)} test mixtures of the corpus ({per} at each input SNR of "
        f"{', '.join(f'{float(k):+g}' for k in snrs)} dB), each reconstructed from the clean fbank features "
        "(40 bands, 16 ms rectangular frames, 8 ms hop) with the noisy phase; `max_gain` unbounded. Mean ± 95 % CI.",
        "",
        "| gains applied | SI-SDR (dB) | PESQ-WB |",
        "|---|---|---|",
        f"| noisy input | {cell(noisy_scores[0], 2)} | {cell(noisy_scores[1], 3)} |",
    ]
    md += [f"| {v} | {cell(s, 2)} | {cell(p, 3)} |" for v, (s, p) in scores.items()]
    first, last = VARIANTS[0], VARIANTS[-1]
    md += [
        "",
        f"The framing approximation costs {np.mean(scores[last][0]) - np.mean(scores[first][0]):.2f} dB SI-SDR and "
        f"{np.mean(scores[last][1]) - np.mean(scores[first][1]):.2f} PESQ-WB at the oracle; a 16 ms synthesis "
        "window is worse still, so the inverse keeps the 32 ms Hann STFT. Removing the gap would need features "
        "computed on the synthesis frames (a Hann-windowed fbank), which changes the seed's features and "
        "every fbank model.",
    ]
    publish("fbank-inverse", "\n".join(md), write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
