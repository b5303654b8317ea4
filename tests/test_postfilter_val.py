"""experiments/postfilter_val.py: the PercepNet / DeepFilterNet post-filter's values and the script's usage errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def pf():
    return load_script("experiments/postfilter_val.py")


def test_post_filter_keeps_0_and_1_and_lowers_gains_between(pf):
    g = np.linspace(0.0, 1.0, 101, dtype=np.float32)
    out = pf.post_filter(g, 0.02)
    assert out.dtype == np.float32 and out.shape == g.shape
    assert out[0] == 0.0 and out[-1] == pytest.approx(1.0, abs=1e-6)
    assert np.all(out[1:-1] < g[1:-1]) and np.all(np.diff(out) > 0)  # below the gain, still increasing
    # g = 0.5: sin^2(pi / 4) = 1 / 2, so (1.02 * 0.5) / (1 + 0.02 * 2) = 0.51 / 1.04
    assert pf.post_filter(np.float32(0.5), 0.02) == pytest.approx(0.51 / 1.04, rel=1e-6)
    # a small gain is pushed down by about 1 + 4 beta / (pi g)^2: g = 0.1, beta 0.1 -> 0.11 / (1 + 0.1 / sin^2(0.05 pi))
    assert pf.post_filter(np.float32(0.1), 0.1) == pytest.approx(0.11 / (1 + 0.1 / np.sin(0.05 * np.pi) ** 2), rel=1e-5)


def test_post_filter_with_beta_0_only_clips(pf):
    g = np.array([-0.5, 0.0, 0.3, 1.0, 1.7], np.float32)
    np.testing.assert_array_equal(pf.post_filter(g, 0.0), np.array([0.0, 0.0, 0.3, 1.0, 1.0], np.float32))


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--dataset", "d"], "usage"), (["--beta", "x"], "--beta takes a number"), (["--beta", "-1"], ">= 0")],
)
def test_usage_errors_say_what_is_wrong(pf, capsys, argv, message):
    assert pf.main(argv) == 2
    assert message in capsys.readouterr().err
