#!/usr/bin/env python3
"""Run 01 -> 04 on a corpus for every (feature, model) pair and print mean SNR / SI-SDR before and after.

This is the measurement behind the README's results table. It calls the same
package functions as the numbered scripts, with the default config unless
``--set`` overrides are given, and writes its artifacts under ``--work``.

    python benchmarks/sample_pipeline.py --data data_sample --work /tmp/speech-dae-bench
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from speech_dae.config import load_config  # noqa: E402
from speech_dae.dataset import build_dataset  # noqa: E402
from speech_dae.extract import extract_features  # noqa: E402
from speech_dae.reconstruct import reconstruct  # noqa: E402
from speech_dae.training import train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data_sample", help="corpus with train/ and test/ (default: data_sample)")
    ap.add_argument("--work", default="/tmp/speech-dae-bench", help="folder for all artifacts")
    ap.add_argument("--features", nargs="+", default=["fbank", "logmag"])
    ap.add_argument("--models", nargs="+", default=["type1", "type2"])
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    args = ap.parse_args()
    work = Path(args.work)
    rows = []
    for feature in args.features:
        cfg = load_config(overrides=[f"features.type={feature}", *args.overrides])
        feats, data = work / "features" / feature, work / "datasets" / feature
        extract_features(cfg, out=feats, data=args.data, progress=False)
        build_dataset(cfg, features=feats, out=data, progress=False)
        for model in args.models:
            mcfg = cfg.replace(**{"model.name": model})
            run = f"{feature}_{model}"
            t0 = time.perf_counter()
            summary = train(mcfg, dataset=data, run=run, models_dir=work / "models", logs_dir=work / "model_logs",
                            progress=False)
            train_s = time.perf_counter() - t0
            rec = reconstruct(mcfg, model_dir=work / "models" / run, out_root=work / "outputs",
                              images_root=work / "images", progress=False)
            scored = rec.rows
            mean = {k: float(np.mean([r[k] for r in scored])) for k in ("snr_in", "snr_out", "si_sdr_in", "si_sdr_out")}
            by_snr = {}
            for r in scored:
                by_snr.setdefault(float(r["snr_db"]), []).append(r["si_sdr_out"] - r["si_sdr_in"])
            rows.append((feature, model, summary.info, train_s, mean, rec.audio_s / rec.seconds,
                         {k: float(np.mean(v)) for k, v in sorted(by_snr.items())}))
            print(f"{run}: SI-SDR {mean['si_sdr_in']:.2f} -> {mean['si_sdr_out']:.2f} dB, "
                  f"SNR {mean['snr_in']:.2f} -> {mean['snr_out']:.2f} dB", flush=True)
    snrs = sorted({s for r in rows for s in r[6]})
    print()
    print(f"| feature | model | params | epochs (best) | train s | SNR dB | SI-SDR dB | "
          + " | ".join(f"ΔSI-SDR @{s:+g} dB" for s in snrs) + " | inference × real time |")
    print("|" + "---|" * (8 + len(snrs)))
    if rows:
        m = rows[0][4]
        print(f"| noisy input | - | - | - | - | {m['snr_in']:.2f} | {m['si_sdr_in']:.2f} | "
              + " | ".join("0.00" for _ in snrs) + " | - |")
    for feature, model, info, train_s, m, rt, per in rows:
        print(f"| {feature} | {model} | {info['n_params']:,} | {info['epochs_run']} ({info['best_epoch']}) | "
              f"{train_s:.0f} | {m['snr_out']:.2f} | {m['si_sdr_out']:.2f} | "
              + " | ".join(f"{per[s]:+.2f}" for s in snrs) + f" | {rt:.0f} |")


if __name__ == "__main__":
    main()
