"""report.html of stages 04 and 05: self-contained, tables equal to the CSVs, escaping, and a real browser.

Stage 04 and 05 run in-process on the session's tiny features (``built``: one
test utterance mixed at 0 and +10 dB) with an identity model, so no training
is needed. The Chromium test is skipped where ``chromium`` is not installed.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
import soundfile as sf
from conftest import error_line, identity_run_dir, run_script, speech_clip, write_wav

from speech_dae.errors import ConfigError
from speech_dae.inputs import Item
from speech_dae.plots import spectrograms_db
from speech_dae.report import card, evaluation_report, example_block, page, pick_examples, strong, table
from speech_dae.stages.evaluate import summary_markdown

METRICS = ["si_sdr", "snr", "stoi"]  # fast; PESQ is covered by test_evaluate.py


class Page(HTMLParser):
    """Everything the tests look at: tags, links, tables (with the heading above them) and text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.tables: list[dict] = []
        self.text: list[str] = []
        self._heading, self._in_heading, self._cell = "", False, None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag in ("h2", "h3"):
            self._heading, self._in_heading = "", True
        elif tag == "table":
            self.tables.append({"heading": self._heading.strip(), "class": attrs.get("class", ""), "rows": []})
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("h2", "h3"):
            self._in_heading = False
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._in_heading:
            self._heading += data
        if self._cell is not None:
            self._cell.append(data)

    def links(self) -> list[str]:
        return [a[k] for _, a in self.tags for k in ("src", "href") if k in a]

    def count(self, tag: str) -> int:
        return sum(t == tag for t, _ in self.tags)

    def table(self, heading_start: str) -> list[list[str]]:
        found = [t for t in self.tables if t["heading"].startswith(heading_start)]
        assert len(found) == 1, [t["heading"] for t in self.tables]
        return found[0]["rows"]


def _read(folder: Path) -> Page:
    return Page((folder / "report.html").read_text(encoding="utf-8"))


def _assert_self_contained(folder: Path, doc: Page) -> list[Path]:
    """Every src/href is relative, stays inside ``folder`` and exists; no script, no leftover temporary file."""
    files = []
    for link in doc.links():
        url = urlparse(link)
        assert not url.scheme and not url.netloc and not link.startswith("/"), link
        path = (folder / unquote(url.path)).resolve()
        assert path.is_relative_to(folder.resolve()) and path.is_file(), link
        files.append(path)
    assert doc.count("script") == 0 and not list(folder.glob(".report*"))
    return files


def _csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _num(cell: str) -> float:
    return float(cell.split(" ±")[0])


@pytest.fixture(scope="module")
def ident(built, tmp_path_factory):
    """An identity run (output = input) that points at the tiny features, like a run trained on them."""
    run = identity_run_dir(tmp_path_factory.mktemp("report_models") / "ident", built.cfg)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "features_dir": str(built.features)}))
    return run


@pytest.fixture(scope="module")
def rec(built, ident, tmp_path_factory):
    from speech_dae.stages.reconstruct import reconstruct

    root = tmp_path_factory.mktemp("report04")
    summary = reconstruct(
        built.cfg, model_dir=ident, out_root=root / "outputs", images_root=root / "images", progress=False
    )
    return summary


@pytest.fixture(scope="module")
def ev(built, ident, tmp_path_factory):
    from speech_dae.stages.evaluate import evaluate

    out = tmp_path_factory.mktemp("report05") / "reports" / "tiny"
    return evaluate(
        built.cfg, out=out, models=[ident], baselines="wiener", features=built.features, metrics=METRICS, progress=False
    )


# ------------------------------------------------------------------ building blocks
def test_table_card_and_page_escape_everything():
    html_text = page(
        "A <b>\"&'",
        [
            table(["x<y", "v"], [["<i>", strong("1 & 2")]]),
            example_block("t<", [card('o"k <3', "a%20b.wav", "c%23d.png", "s<1")]),
        ],
        meta=["m&m"],
    )
    assert "<b>" not in html_text and "<i>" not in html_text and "<3" not in html_text
    doc = Page(html_text)
    assert doc.tables[0]["rows"] == [["x<y", "v"], ["<i>", "1 & 2"]]
    assert ("strong", {}) in doc.tags and "A <b>\"&'" in "".join(doc.text)
    assert doc.links() == ["a%20b.wav", "a%20b.wav", "c%23d.png"]  # <audio src>, its fallback <a href>, <img>
    assert [a["alt"] for t, a in doc.tags if t == "img"] == ['spectrogram: o"k <3']


def test_pick_examples_spreads_over_snrs_and_validates():
    items = [Item(f"{s}_{i}", None, None, s) for s in ("10", "-5", "0") for i in range(5)]
    assert [it.uid for it in pick_examples(items)] == ["-5_2", "0_2", "10_2"]  # one per SNR, middle file
    assert [it.uid for it in pick_examples(items, 4)] == ["-5_1", "-5_3", "0_2", "10_2"]
    assert pick_examples(items, 0) == [] and len(pick_examples(items, 100)) == 15
    many = [Item(f"{s}_0", None, None, str(s)) for s in range(12)]
    assert len(pick_examples(many)) == 8  # at most 8 by default
    own = [Item(f"f{i}", None, None, "") for i in range(10)]
    assert [it.uid for it in pick_examples(own)] == ["f1", "f3", "f6", "f8"]  # no SNR: 4 evenly spaced
    with pytest.raises(ConfigError, match="--report-examples must be 0 or more, not -1"):
        pick_examples(items, -1)


def test_spectrograms_db_one_peak_over_all_signals():
    sr = 16000
    t = np.arange(sr) / sr
    loud, quiet = np.sin(2 * np.pi * 1000 * t), 0.01 * np.sin(2 * np.pi * 1000 * t)
    specs, vmax = spectrograms_db([quiet, loud], n_fft=512, hop_length=128, max_s=0.5, sample_rate=sr)
    # 0.5 s = 8000 samples, centred frames: 1 + 8000 // 128 = 63; 257 bins; 1000 Hz = bin 1000 / 31.25 = 32
    assert [s.shape for s in specs] == [(257, 63), (257, 63)]
    assert vmax == float(specs[1].max()) and int(specs[1][:, 30].argmax()) == 32
    # a sine of amplitude 1 through a Hann window: |X| = 512 / 4 = 128 -> 42.1 dB; the quiet one 40 dB lower
    assert vmax == pytest.approx(20 * np.log10(128), abs=0.1)
    assert float(specs[0].max()) == pytest.approx(vmax - 40.0, abs=0.01)
    with pytest.raises(ValueError, match="max_s needs sample_rate"):
        spectrograms_db([loud], n_fft=512, hop_length=128, max_s=0.5)


def test_summary_md_and_report_html_show_the_same_tables(tmp_path):
    nan = float("nan")
    summary = {
        name: {
            "kind": kind,
            "n_files": 1,
            "x_real_time": rt,
            "overall": {"si_sdr": [v, nan, 1], "mse": [w, nan, 1]},
            "by_snr": {"5": {"si_sdr": [v, nan, 1], "mse": [w, nan, 1]}},
            **({"delta": {"si_sdr": [v - 1.0, nan, 1], "mse": [w - 0.5, nan, 1]}} if kind != "input" else {}),
        }
        for name, kind, rt, v, w in (("noisy", "input", None, 1.0, 0.5), ("m", "model", 20.0, 3.0, 0.25))
    }
    md = summary_markdown(summary, ["si_sdr", "mse"], title="t")
    evaluation_report(tmp_path, summary, ["si_sdr", "mse"], [], title="t")
    doc = _read(tmp_path)
    assert "| m | model | 1 | **3.00** | 20 |" in md and doc.table("Overall")[2] == ["m", "model", "1", "3.00", "20"]
    assert "| noisy | input | 1 | 0.50000 | - |" in md and doc.table("Other metrics")[1] == [
        "noisy",
        "input",
        "1",
        "0.50000",
    ]
    assert "| m | 2.00 |" in md and doc.table("Improvement")[1:] == [["m", "2.00"]]
    assert "| m | **0.25000** |" in md and doc.table("MSE (lower is better)")[1:] == [
        ["noisy", "0.50000"],
        ["m", "0.25000"],
    ]
    assert [a for t, a in doc.tags if t == "strong"] == [{}] * 4  # overall SI-SDR, other MSE, by-SNR SI-SDR and MSE


# ------------------------------------------------------------------ stage 04
def test_reconstruct_report_is_self_contained_and_shows_metrics_csv(rec):
    folder = rec.out_dir
    assert rec.report == folder / "report.html" and "report.html" in rec.lines()[-1]
    doc = _read(folder)
    files = _assert_self_contained(folder, doc)
    rows = _csv(folder / "metrics.csv")
    assert sorted(float(r["snr_db"]) for r in rows) == [0.0, 10.0]
    # one example per input SNR: noisy, denoised (the WAV 04 writes), clean; a spectrogram under each player
    assert doc.count("audio") == 6 and doc.count("img") == 6
    linked_here = {f.name for f in files if f.parent == folder.resolve() and f.suffix == ".wav"}
    assert linked_here == {f"{r['id']}_denoised.wav" for r in rows}
    clips = sorted((folder / "report_files").rglob("*.wav"))
    assert len(clips) == 4 and all(f.stat().st_size > 1000 for f in clips)
    assert {sf.info(str(f)).subtype for f in clips} == {"PCM_16"}
    per_file = doc.table("Per file")
    assert per_file[0][:4] == ["file", "input SNR", "SNR in", "SNR out"]
    by_id = {r["id"]: r for r in rows}
    assert sorted(line[0] for line in per_file[1:]) == sorted(by_id)
    for line in per_file[1:]:
        r = by_id[line[0]]
        assert float(line[1]) == float(r["snr_db"])
        got = [float(v) for v in line[2:]]
        want = [float(r[k]) for k in ("snr_in", "snr_out")] + [float(r["snr_out"]) - float(r["snr_in"])]
        want += [float(r[k]) for k in ("si_sdr_in", "si_sdr_out")] + [float(r["si_sdr_out"]) - float(r["si_sdr_in"])]
        np.testing.assert_allclose(got, want, atol=0.0051)
    means = doc.table("Mean scores")
    assert [line[0] for line in means[1:]] == ["+0 dB", "+10 dB", "all"]
    assert _num(means[-1][5]) == pytest.approx(np.mean([float(r["si_sdr_in"]) for r in rows]), abs=0.0051)


def test_reconstruct_report_examples_zero_has_tables_and_no_players(built, ident, tmp_path):
    from speech_dae.stages.reconstruct import reconstruct

    s = reconstruct(
        built.cfg,
        model_dir=ident,
        out_root=tmp_path / "o",
        images_root=tmp_path / "i",
        progress=False,
        report_examples=0,
    )
    doc = _read(s.out_dir)
    assert doc.count("audio") == 0 and doc.count("img") == 0 and len(doc.table("Per file")) == 3
    assert not (s.out_dir / "report_files").exists()


def test_odd_file_names_are_escaped_and_linked(built, tmp_path):
    """A file and a run named with HTML and URL specials: shown verbatim as text, linked percent-encoded."""
    from speech_dae.stages.reconstruct import reconstruct

    run = identity_run_dir(tmp_path / "models" / "run <x> & 'y'", built.cfg)
    odd = 'a <b> & "c" #1? 50%'
    y = speech_clip(0, 1.0, split="test")
    noise = np.random.default_rng(0).normal(0, 0.02, y.size).astype(np.float32)
    write_wav(tmp_path / "noisy" / "sub dir" / f"{odd}.wav", y + noise)
    write_wav(tmp_path / "clean" / "sub dir" / f"{odd}.wav", y)
    s = reconstruct(
        built.cfg,
        model_dir=run,
        inputs=tmp_path / "noisy",
        clean=tmp_path / "clean",
        out_root=tmp_path / "outputs",
        images_root=tmp_path / "images",
        progress=False,
    )
    raw = (s.out_dir / "report.html").read_text(encoding="utf-8")
    assert "<b>" not in raw and "<x>" not in raw
    doc = Page(raw)
    text = "".join(doc.text)
    uid = f"sub dir-{odd}"
    assert "Reconstruction: run <x> & 'y'" in text and uid in text
    files = _assert_self_contained(s.out_dir, doc)
    assert (s.out_dir / f"{uid}_denoised.wav").resolve() in files
    assert doc.table("Per file")[1][0] == uid
    assert doc.count("audio") == 3  # a folder without SNRs: up to 4 examples, here the only file


# ------------------------------------------------------------------ stage 05
def test_evaluate_report_tables_equal_the_results_csv(ev):
    folder = ev.out
    doc = _read(folder)
    _assert_self_contained(folder, doc)
    rows = _csv(folder / "results.csv")
    systems = list(dict.fromkeys(r["system"] for r in rows))
    assert systems == ["noisy", "ident", "wiener"]
    overall = doc.table("Overall")
    header = overall[0]
    assert header[:3] == ["system", "kind", "files"] and header[-1] == "× real time"
    assert [line[0] for line in overall[1:]] == systems
    for line in overall[1:]:
        mine = [r for r in rows if r["system"] == line[0]]
        assert line[2] == str(len(mine)) == "2"
        for label, m, tol in (
            ("SI-SDR (dB)", "si_sdr", 0.0051),
            ("STOI", "stoi", 0.00051),
            ("SNR (dB)", "snr", 0.0051),
        ):
            assert _num(line[header.index(label)]) == pytest.approx(np.mean([float(r[m]) for r in mine]), abs=tol)
    by_snr = doc.table("SI-SDR (dB) (higher is better)")
    assert by_snr[0] == ["system", "+0 dB", "+10 dB"]
    for line in by_snr[1:]:
        for snr, cell in zip((0.0, 10.0), line[1:]):
            (r,) = [r for r in rows if r["system"] == line[0] and float(r["snr_db"]) == snr]
            assert _num(cell) == pytest.approx(float(r["si_sdr"]), abs=0.0051)
    delta = doc.table("Improvement over the noisy input")
    assert [line[0] for line in delta[1:]] == ["ident", "wiener"]
    # the plot and the raw files are linked; two examples (one per SNR) x (noisy, ident, wiener, clean)
    assert {"metrics_by_snr.png", "results.csv", "summary.md", "summary.json"} <= set(doc.links())
    assert doc.count("audio") == 8 and len(list((folder / "report_files").rglob("*.png"))) == 8
    assert json.loads((folder / "evaluation.json").read_text())["report_examples"] == 2


def test_evaluate_rerun_with_other_examples_warns_and_zero_disables_players(built, ident, ev, tmp_path, caplog):
    from speech_dae.stages.evaluate import evaluate

    kw = dict(models=[ident], baselines="wiener", features=built.features, metrics=METRICS, progress=False)
    with caplog.at_level(logging.WARNING):
        again = evaluate(built.cfg, out=ev.out, report_examples=1, **kw)
    assert again.up_to_date and "pass --force to rebuild it" in caplog.text
    none = evaluate(built.cfg, out=tmp_path / "rep", report_examples=0, **kw)
    doc = _read(none.out)
    assert doc.count("audio") == 0 and len(doc.table("Overall")) == 4 and not (none.out / "report_files").exists()


@pytest.mark.slow  # the numbered script in a subprocess
def test_cli_refuses_a_negative_number_of_examples(built, tmp_path):
    proc = run_script(
        "05_evaluate.py",
        "--baselines",
        "wiener",
        "--features",
        str(built.features),
        "--report-examples",
        "-2",
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert error_line(proc) == "error: --report-examples must be 0 or more, not -2"


# ------------------------------------------------------------------ a real browser
CHROMIUM = shutil.which("chromium")


def _chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow  # a headless browser in a subprocess
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_chromium_renders_the_table_players_and_a_screenshot(ev, tmp_path):
    url = (ev.out / "report.html").resolve().as_uri()
    dom = _chromium("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    doc = Page(dom.stdout)
    assert doc.count("audio") == 8 and doc.table("Overall")[1][0] == "noisy"
    shot = tmp_path / "shot.png"
    proc = _chromium(f"--screenshot={shot}", "--window-size=1000,1400", "--hide-scrollbars", url)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
