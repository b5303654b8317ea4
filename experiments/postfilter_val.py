#!/usr/bin/env python3
"""Validation experiment: DeepFilterNet's gain post-filter on the masks of a trained mask run.

The post-filter of PercepNet (J.-M. Valin et al., "A perceptually-motivated approach for low-complexity,
real-time enhancement of fullband speech", Interspeech 2020), which DeepFilterNet applies to its ERB gains
(``post_filter``, ``beta`` 0.02), pushes low gains further down and leaves a gain of 1 alone::

    g_pf = (1 + beta) * g / (1 + beta / sin(pi * g / 2) ** 2)

This script applies it to every mask the run predicts (``FeatureExtractor.masked_stft`` is wrapped for
this process only; the package is unchanged) and scores the run on validation mixtures with
``benchmarks/val_score.py``, whose arguments follow ``--beta``. ``--beta 0`` scores the run as it is.
Compare two scorings by their per-file ``results.csv`` (same files, same order). Issue 18 measured
beta 0.02, 0.05 and 0.1 this way (docs/best.md, "Choosing on the validation split") and did not adopt
it: it trades PESQ-WB and STOI for SI-SDR and DNSMOS OVRL.

    python experiments/postfilter_val.py --beta 0.02 --dataset WORK/datasets/best \\
        --models WORK/models/loss_base --files 100 --dnsmos --out WORK/reports/val_pf_0.02.md
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from speech_dae.features import FeatureExtractor  # noqa: E402


def post_filter(gain: np.ndarray, beta: float) -> np.ndarray:
    """PercepNet / DeepFilterNet post-filter of a gain in [0, 1].

    Parameters
    ----------
    gain : np.ndarray, float
        Per-bin gains (clipped to [0, 1] first).
    beta : float >= 0
        Strength (0: unchanged; DeepFilterNet uses 0.02).

    Returns
    -------
    np.ndarray, float32
        Same shape; 0 stays 0 and 1 stays 1.
    """
    g = np.clip(np.asarray(gain, np.float32), 0.0, 1.0)
    if beta <= 0:
        return g
    s2 = np.sin(np.float32(np.pi / 2) * g) ** 2
    return np.where(g > 0, (1 + beta) * g / (1 + beta / np.maximum(s2, 1e-12)), 0.0).astype(np.float32)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "--beta":
        print(__doc__)
        print("usage: postfilter_val.py --beta BETA VAL_SCORE_ARGS...", file=sys.stderr)
        return 2
    try:
        beta = float(argv[1])
    except ValueError:
        print(f"--beta takes a number >= 0, got {argv[1]!r}", file=sys.stderr)
        return 2
    if not beta >= 0:
        print(f"--beta takes a number >= 0, got {beta}", file=sys.stderr)
        return 2
    masked_stft = FeatureExtractor.masked_stft

    def filtered(self, S_noisy, mask, **kw):
        return masked_stft(self, S_noisy, post_filter(mask, beta), **kw)

    FeatureExtractor.masked_stft = filtered
    from benchmarks import val_score

    return val_score.main(argv[2:])


if __name__ == "__main__":  # the metric workers are spawned processes: nothing runs on their import
    sys.exit(main(sys.argv[1:]))
