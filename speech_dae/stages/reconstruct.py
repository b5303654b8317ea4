"""Stage 04: features -> model -> inverse -> waveform, plus spectrogram images and metrics.

Needs only ``models/<run>/`` (``model.keras``, ``run.json``, ``norm.npz``) and
audio files. For each input, the whole file goes through one batched
``predict``: its features are cut into ``context``-frame patches every
``reconstruct.patch_hop`` frames, the predicted patches are overlap-averaged
back into one frame sequence, un-normalised, and inverted to audio (phase
borrowing for logmag, mel-domain gain for fbank; see :mod:`speech_dae.features`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .. import report
from ..artifacts import clear_temporaries, write_csv
from ..audio import load_audio, validate_audio, write_audio
from ..config import Config
from ..errors import AudioError
from ..folders import trained_on_items
from ..inference import Denoiser
from ..inputs import folder_items
from ..metrics import si_sdr, snr
from ..plots import plot_spectrograms
from ..scores import fmt_number, means_by_snr

__all__ = ["reconstruct", "ReconstructSummary"]

log = logging.getLogger(__name__)

#: The per-file scores of stage 04 (dB).
_KEYS = ("snr_in", "snr_out", "si_sdr_in", "si_sdr_out")


@dataclass
class ReconstructSummary:
    run: str
    rows: list = field(default_factory=list)
    out_dir: Path | None = None
    images_dir: Path | None = None
    seconds: float = 0.0
    audio_s: float = 0.0
    report: Path | None = None

    def lines(self) -> list[str]:
        out = []
        scored = [r for r in self.rows if r.get("si_sdr_out") not in (None, "")]
        for r in self.rows:
            if r in scored:
                out.append(
                    f"{r['id']}: SNR {r['snr_in']:6.2f} -> {r['snr_out']:6.2f} dB, "
                    f"SI-SDR {r['si_sdr_in']:6.2f} -> {r['si_sdr_out']:6.2f} dB"
                )
            elif r.get("not_scored"):
                out.append(f"{r['id']}: denoised, not scored ({r['not_scored']})")
            else:
                out.append(f"{r['id']}: denoised (no clean reference to score against)")
        for key, n, means in means_by_snr(scored, _KEYS):
            if key is None:
                out.append(f"mean over {n} files: " + _means(means))
            elif key:
                out.append(f"  input SNR {float(key):+g} dB ({n} files): " + _means(means))
        rt = self.audio_s / self.seconds if self.seconds else 0.0
        out.append(
            f"wrote {len(self.rows)} denoised files to {self.out_dir}/ and images to {self.images_dir}/ "
            f"({rt:.0f}x real time)"
        )
        if self.report is not None:
            out.append(f"listening report: {self.report} (open it in a browser)")
        return out


def _means(m: dict) -> str:
    return (
        f"SNR {m['snr_in']:.2f} -> {m['snr_out']:.2f} dB ({m['snr_out'] - m['snr_in']:+.2f}), "
        f"SI-SDR {m['si_sdr_in']:.2f} -> {m['si_sdr_out']:.2f} dB ({m['si_sdr_out'] - m['si_sdr_in']:+.2f})"
    )


def reconstruct(
    cfg: Config,
    *,
    model_dir: str | Path,
    inputs: str | Path | None = None,
    clean: str | Path | None = None,
    out_root: str | Path = "outputs",
    images_root: str | Path = "images",
    progress: bool = True,
    report_examples: int | None = None,
    patch_hop: int | None = None,
) -> ReconstructSummary:
    """Run stage 04: denoise files with a trained run, write WAVs, images, metrics and ``report.html``.

    Parameters
    ----------
    cfg : Config
        Uses the ``reconstruct`` section.
    model_dir : str or Path
        ``models/<run>/``.
    inputs : str or Path, optional
        A noisy audio file or folder. Default: the test mixtures listed in the
        manifest of the features the model was trained from (scored against their references).
    clean : str or Path, optional
        Clean references for ``inputs``, matched by relative path.
    report_examples : int, optional
        Files shown with noisy / denoised / clean players and spectrograms in ``report.html``
        (default: one per input SNR, see :func:`speech_dae.report.pick_examples`; 0: none).
    patch_hop : int, optional
        Frames between inference patches; default: the hop the run was validated with (``run.json``).

    Returns
    -------
    ReconstructSummary
        Also written: ``outputs/<run>/<id>_denoised.wav``, ``images/<run>/<id>.png``,
        ``outputs/<run>/report.html`` (with its ``report_files/``) and, when references are known,
        ``outputs/<run>/metrics.csv``.

    Raises
    ------
    ArtifactError
        If the run folder is missing or incomplete (names stage 03).
    AudioError
        If ``inputs`` does not exist or holds no audio.
    ConfigError
        If ``report_examples`` is negative.
    """
    r = cfg.reconstruct
    den = Denoiser(
        model_dir,
        patch_hop=patch_hop,
        batch_size=r.batch_size,
        max_gain=r.max_gain,
        atten_lim_db=r.atten_lim_db,
        inference=r.inference,
    )
    items = (
        trained_on_items(den.info.features_dir, run=den.name, instead="--input WAV_OR_DIR (and --clean DIR to score)")
        if inputs is None
        else folder_items(inputs, clean)
    )
    out_dir, img_dir = Path(out_root) / den.name, Path(images_root) / den.name
    sr = den.sample_rate
    summary = ReconstructSummary(den.name, out_dir=out_dir, images_dir=img_dir)
    t_model = 0.0
    skipped = []
    examples = {it.uid: k for k, it in enumerate(report.pick_examples(items, report_examples))}
    shown = []
    report.clear_assets(out_dir)
    for folder in (out_dir, img_dir):  # both are rewritten in place: drop a killed run's half-written files
        clear_temporaries(folder)
    unscored = 0
    for uid, path, ref_path, snr_db in tqdm(items, desc="04 reconstruct", unit="file", disable=not progress):
        try:
            noisy, _ = load_audio(path, sample_rate=sr)
            noisy = validate_audio(noisy, sample_rate=sr, min_duration_s=den.fx.cfg.n_fft / sr, name=str(path))
        except AudioError as exc:
            skipped.append(str(exc))
            log.warning("skipped: %s", exc)
            continue
        ref = None
        if ref_path is not None:
            try:  # a broken or silent reference costs that file its scores, not the run
                ref, _ = load_audio(ref_path, sample_rate=sr)
                ref = validate_audio(ref, sample_rate=sr, silence_rms_db=cfg.audio.silence_rms_db, name=str(ref_path))
            except AudioError as exc:
                ref, unscored = None, unscored + 1
                log.warning("not scored: %s: the clean reference is unusable: %s", path, exc)
                not_scored = f"clean reference unusable: {exc}"
        t0 = time.perf_counter()
        y_hat = den(noisy)
        t_model += time.perf_counter() - t0
        summary.audio_s += noisy.size / sr
        out_wav = write_audio(out_dir / f"{uid}_denoised.wav", y_hat, sr)
        row = {"id": uid, "snr_db": snr_db, "noisy_file": str(path)}
        if ref_path is not None and ref is None:
            row["not_scored"] = not_scored
        panels = [("noisy", noisy), ("denoised", y_hat)]
        if ref is not None:
            n = min(ref.size, noisy.size)
            ref = ref[:n]
            row.update(
                snr_in=snr(ref, noisy[:n]) + 0.0,
                snr_out=snr(ref, y_hat[:n]) + 0.0,  # + 0.0: no "-0.0"
                si_sdr_in=si_sdr(ref, noisy[:n]) + 0.0,
                si_sdr_out=si_sdr(ref, y_hat[:n]) + 0.0,
            )
            panels = [
                (f"noisy: SNR {row['snr_in']:.1f} dB, SI-SDR {row['si_sdr_in']:.1f} dB", noisy),
                (
                    f"denoised ({den.info.model}, {den.info.feature}): SNR {row['snr_out']:.1f} dB, "
                    f"SI-SDR {row['si_sdr_out']:.1f} dB",
                    y_hat,
                ),
                ("clean reference", ref),
            ]
        c = den.fx.cfg
        plot_spectrograms(
            panels,
            img_dir / f"{uid}.png",
            sample_rate=sr,
            n_fft=c.n_fft,
            hop_length=c.hop_length,
            max_s=r.image_max_s,
            suptitle=uid,
        )
        summary.rows.append(row)
        if uid in examples:
            signals = [
                ("noisy", "noisy input", noisy, None),
                ("denoised", f"denoised ({den.info.model}, {den.info.feature})", y_hat, out_wav),
            ]
            signals += [("clean", "clean reference", ref, None)] if ref is not None else []
            cards = report.save_example(
                out_dir,
                examples[uid],
                signals,
                sample_rate=sr,
                n_fft=c.n_fft,
                hop_length=c.hop_length,
                image_max_s=r.image_max_s,
            )
            if ref is not None:
                for cd, side in zip(cards, ("in", "out")):
                    cd["scores"] = (
                        f"SNR {fmt_number(row[f'snr_{side}'], 1)} dB · SI-SDR {fmt_number(row[f'si_sdr_{side}'], 1)} dB"
                    )
            shown.append({"id": uid, "snr_db": snr_db, "cards": cards, "k": examples[uid]})
    if not summary.rows:
        raise AudioError(
            f"no input could be denoised ({len(skipped)} skipped; first: {skipped[0] if skipped else '-'})"
        )
    if any("si_sdr_out" in row for row in summary.rows):
        fields = ("id", "snr_db", "snr_in", "snr_out", "si_sdr_in", "si_sdr_out", "noisy_file")
        write_csv(
            out_dir / "metrics.csv",
            [
                {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
                for row in summary.rows
                if "si_sdr_out" in row
            ],
            fields,
        )
    summary.seconds = t_model
    rt = f", {summary.audio_s / t_model:.0f}× real time" if t_model else ""
    summary.report = report.reconstruct_report(
        out_dir,
        summary.rows,
        sorted(shown, key=lambda e: e["k"]),
        title=f"Reconstruction: {den.name}",
        meta=[
            f"{den.info.model} on {den.info.feature} features ({den.target}) from {den.run_dir}; "
            f"{len(summary.rows)} file(s) denoised{rt}"
            + (f", {len(skipped)} skipped" if skipped else "")
            + (f", {unscored} not scored (clean reference unusable)" if unscored else "")
            + "."
        ],
    )
    return summary
