"""The centred STFT and its weighted overlap-add inverse, in vectorised NumPy, frame for frame equal to librosa's.

:func:`stft` and :func:`istft` compute what ``librosa.stft(center=True,
pad_mode="constant")`` and ``librosa.istft(center=True, length=...)`` compute
(tested against them to float32 rounding): frame ``t`` is centred on sample
``t * hop_length`` of the signal padded with ``n_fft // 2`` zeros at both ends,
windowed by ``scipy.signal.get_window(window, win_length, fftbins=True)``
centred in ``n_fft`` samples; the inverse overlap-adds the windowed inverse
FFTs and divides by the overlap-added squared window wherever it is above the
smallest normal float (librosa's ``window_sumsquare``).

Why not librosa itself: its inverse fills the window sum with a Numba kernel
compiled on first use, which costs ~1.2 s of start-up in every new process
(``speech-dae denoise`` on a 1 s file would take that long), and a frame-by-frame
stream needs the same arithmetic one frame at a time (:class:`OverlapAdd`). On
a 60 s signal at n_fft 512 / hop 128 the forward is ~1.5x and the inverse ~3x
faster than librosa's on 2 cores (``benchmarks/speed.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft
import scipy.signal

__all__ = ["analysis_window", "stft", "stft_frames", "istft", "frame_count", "window_sumsquare", "OverlapAdd"]


#: Frames per block of the forward transform (float64 work arrays of 1 MB at n_fft 512; of 128-2048, 256
#: was fastest on 60 s)
_BLOCK = 256
_TINY = np.finfo(np.float32).tiny


@lru_cache(maxsize=16)
def _window64(window: str, win_length: int, n_fft: int) -> np.ndarray:
    """``get_window(window, win_length, fftbins=True)`` centred in ``n_fft`` zeros, float64, read-only."""
    out = np.zeros(int(n_fft), np.float64)
    lpad = (int(n_fft) - int(win_length)) // 2
    out[lpad : lpad + int(win_length)] = scipy.signal.get_window(window, int(win_length), fftbins=True)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=16)
def _window(window: str, win_length: int, n_fft: int) -> np.ndarray:
    out = _window64(window, win_length, n_fft).astype(np.float32)
    out.setflags(write=False)
    return out


def _normalised(acc: np.ndarray, wss: np.ndarray) -> np.ndarray:
    """``acc / wss`` wherever the squared-window sum exceeds the smallest normal float32, else ``acc``."""
    ok = wss > _TINY
    return np.where(ok, acc / np.where(ok, wss, 1.0), acc).astype(np.float32, copy=False)


def analysis_window(window: str, win_length: int, n_fft: int) -> np.ndarray:
    """The window of :func:`stft` and :func:`istft`: ``get_window(window, win_length, fftbins=True)``, centred.

    Returns
    -------
    np.ndarray [shape=(n_fft,)], float32, read-only
    """
    if not 0 < int(win_length) <= int(n_fft):
        raise ValueError(f"win_length={win_length} must be in [1, n_fft={n_fft}]")
    return _window(str(window), int(win_length), int(n_fft))


def frame_count(n_samples: int, hop_length: int) -> int:
    """Frames of :func:`stft` for ``n_samples`` samples: ``1 + n_samples // hop_length`` (even ``n_fft``)."""
    return 1 + int(n_samples) // int(hop_length)


def stft(y: np.ndarray, *, n_fft: int, hop_length: int, win_length: int, window: str = "hann") -> np.ndarray:
    """Centred STFT, zero padded: ``librosa.stft(y, center=True, pad_mode="constant")`` with frames first.

    Parameters
    ----------
    y : np.ndarray [shape=(..., n_samples)], float
        One signal or a batch of equally long signals.
    n_fft, hop_length, win_length : int
        Samples.
    window : str
        A ``scipy.signal.get_window`` name.

    Returns
    -------
    np.ndarray [shape=(..., 1 + (n_samples + 2 * (n_fft // 2) - n_fft) // hop_length, n_fft // 2 + 1)], complex64
        Frame ``t`` centred on sample ``t * hop_length``.

    Raises
    ------
    ValueError
        If the signal is shorter than ``n_fft - 2 * (n_fft // 2)`` samples after padding (never for even n_fft
        and a non-empty signal).
    """
    y = np.asarray(y, dtype=np.float32)
    half = int(n_fft) // 2
    padded = np.pad(y, [(0, 0)] * (y.ndim - 1) + [(half, half)])
    if padded.shape[-1] < n_fft:
        raise ValueError(f"a signal of {y.shape[-1]} samples is too short for n_fft={n_fft}")
    return stft_frames(padded, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window)


def stft_frames(
    padded: np.ndarray, *, n_fft: int, hop_length: int, win_length: int, window: str = "hann"
) -> np.ndarray:
    """STFT frames of an already padded signal: frame ``t`` is ``padded[..., t * hop_length : t * hop_length + n_fft]``.

    :func:`stft` pads ``n_fft // 2`` zeros at both ends and calls this; a stream calls it on the
    newest samples (:class:`speech_dae.inference.streaming.FrameStreamer`).

    Returns
    -------
    np.ndarray [shape=(..., 1 + (padded_length - n_fft) // hop_length, n_fft // 2 + 1)], complex64
        (no frames if ``padded_length < n_fft``).
    """
    padded = np.asarray(padded, dtype=np.float32)
    if padded.shape[-1] < n_fft:
        return np.zeros((*padded.shape[:-1], 0, int(n_fft) // 2 + 1), np.complex64)
    n_fft, hop = int(n_fft), int(hop_length)
    n = 1 + (padded.shape[-1] - n_fft) // hop
    if padded.ndim == 1 and n <= 4:  # a stream's few frames: slices cost less than a strided view
        frames = np.stack([padded[t * hop : t * hop + n_fft] for t in range(n)])
    else:
        frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[..., ::hop, :]
    # windowed and transformed in float64, as librosa does (its window is float64): log features of quiet
    # frames are sensitive to the last bits of |S|
    win = _window64(str(window), int(win_length), n_fft)
    if frames.shape[-2] <= _BLOCK:
        return scipy.fft.rfft(frames * win, axis=-1).astype(np.complex64)
    out = np.empty((*frames.shape[:-1], n_fft // 2 + 1), np.complex64)
    for s in range(0, frames.shape[-2], _BLOCK):  # blocks that stay in cache, as librosa does
        out[..., s : s + _BLOCK, :] = scipy.fft.rfft(frames[..., s : s + _BLOCK, :] * win, axis=-1)
    return out


def _overlap_add(frames: np.ndarray, hop_length: int) -> np.ndarray:
    """Sum of ``frames[t]`` placed at ``t * hop_length``: ``(n_frames, n_fft)`` -> ``(n_fft + hop * (n_frames - 1),)``.

    Vectorised over frames: each frame is cut into ``ceil(n_fft / hop_length)`` hop-long pieces, and
    piece ``j`` of every frame is added in one slice operation.
    """
    n, n_fft = frames.shape
    r = -(-n_fft // hop_length)
    pieces = np.zeros((n, r * hop_length), frames.dtype)
    pieces[:, :n_fft] = frames
    pieces = pieces.reshape(n, r, hop_length)
    out = np.zeros((n + r - 1, hop_length), frames.dtype)
    for j in range(r):
        out[j : j + n] += pieces[:, j]
    return out.reshape(-1)[: n_fft + hop_length * (n - 1)]


def window_sumsquare(
    n_frames: int, *, n_fft: int, hop_length: int, win_length: int, window: str = "hann"
) -> np.ndarray:
    """Overlap-added squared window of ``n_frames`` frames: ``(n_fft + hop_length * (n_frames - 1),)``, float32.

    As ``librosa.filters.window_sumsquare`` (in padded coordinates: sample ``n_fft // 2`` is signal sample 0).
    """
    w2 = analysis_window(window, win_length, n_fft) ** 2
    return _overlap_add(np.broadcast_to(w2, (int(n_frames), int(n_fft))), int(hop_length))


def istft(
    S: np.ndarray, *, length: int, n_fft: int, hop_length: int, win_length: int, window: str = "hann"
) -> np.ndarray:
    """Inverse of :func:`stft` by weighted overlap-add: ``librosa.istft(S.T, center=True, length=length)``.

    Parameters
    ----------
    S : np.ndarray [shape=(n_frames, n_fft // 2 + 1)], complex
        Frames first, as :func:`stft` returns them.
    length : int
        Samples of the output (cropped, or zero padded at the end).

    Returns
    -------
    np.ndarray [shape=(length,)], float32
        ``sum_t w * irfft(S[t])`` placed at ``t * hop_length - n_fft // 2``, divided by the squared-window
        sum wherever that sum exceeds the smallest normal float32.
    """
    n_fft, hop = int(n_fft), int(hop_length)
    half = n_fft // 2
    n_frames = min(S.shape[0], -(-(int(length) + 2 * half) // hop))
    win = analysis_window(window, win_length, n_fft)
    frames = scipy.fft.irfft(S[:n_frames], n=n_fft, axis=-1, workers=-1).astype(np.float32, copy=False) * win
    y = _overlap_add(frames, hop)[half : half + int(length)]
    wss = window_sumsquare(n_frames, n_fft=n_fft, hop_length=hop, win_length=win_length, window=window)
    wss = wss[half : half + int(length)]
    y = _normalised(y, wss)
    out = np.zeros(int(length), np.float32)
    out[: y.size] = y
    return out


class OverlapAdd:
    """Frame-by-frame :func:`istft`: feed STFT frames in order, take the samples no later frame reaches.

    After frames ``0 .. t`` are added, the signal samples before ``(t + 1) * hop_length - n_fft // 2``
    are final; :meth:`finish` returns the rest for a signal of a given length. The concatenated
    outputs equal :func:`istft` of all frames (float32 rounding). Between calls it holds
    ``n_fft - hop_length`` samples of overlap-add and of squared-window sum.

    Parameters
    ----------
    n_fft, hop_length, win_length : int
    window : str
    """

    def __init__(self, *, n_fft: int, hop_length: int, win_length: int, window: str = "hann"):
        self.n_fft, self.hop = int(n_fft), int(hop_length)
        self.win = analysis_window(window, win_length, n_fft)
        self.w2 = self.win**2
        # padded samples from n_fft - hop on get every overlapping frame: their squared-window sum repeats
        # every hop (librosa leaves a sample whose sum is not above the tiny float unnormalised: gain 1)
        r = -(-self.n_fft // self.hop)
        steady = np.zeros(r * self.hop, np.float32)
        steady[: self.n_fft] = self.w2
        steady = steady.reshape(r, self.hop).sum(axis=0)
        self._inv_steady = _normalised(np.ones(self.hop, np.float32), steady)
        tail = max(self.n_fft - self.hop, 0)
        self._steady_tail = np.zeros(tail, np.float32)  # wss of the samples after the next frame's start
        for j in range(1, r):  # frame (last - j + 1) reaches the tail from its j-th hop on
            piece = self.w2[j * self.hop : j * self.hop + tail]
            self._steady_tail[: piece.size] += piece
        self.reset()

    def reset(self) -> None:
        """Start a new signal."""
        tail = max(self.n_fft - self.hop, 0)
        self._acc = np.zeros(tail, np.float32)  # overlap-add from padded index self._pos on
        self._wss = np.zeros(tail, np.float32)
        self._pos = 0

    def add(self, S: np.ndarray) -> np.ndarray:
        """Add the next frames ``(k, n_fft // 2 + 1)`` complex; return the signal samples now final (float32)."""
        k = S.shape[0]
        if k == 0:
            return np.zeros(0, np.float32)
        frames = scipy.fft.irfft(S, n=self.n_fft, axis=-1).astype(np.float32, copy=False) * self.win
        n_fft, hop = self.n_fft, self.hop
        size = n_fft + hop * (k - 1)
        steady = self._pos >= n_fft - hop  # every sample to return gets all its frames (self._pos: k * hop)
        acc = np.zeros(size, np.float32)
        acc[: self._acc.size] = self._acc
        if k <= 4:  # a stream's few frames: plain slices beat the reshaping of _overlap_add
            for j in range(k):
                acc[j * hop : j * hop + n_fft] += frames[j]
        else:
            acc += _overlap_add(frames, hop)
        done = k * hop  # padded samples no later frame reaches
        if steady:
            y = acc[:done] * (self._inv_steady if k == 1 else np.tile(self._inv_steady, k))
            wss = None
        else:
            wss = np.zeros(size, np.float32)
            wss[: self._wss.size] = self._wss
            wss += _overlap_add(np.broadcast_to(self.w2, frames.shape), hop)
            y = _normalised(acc[:done], wss[:done])
        # steady: the tail's squared-window sum is the same after every frame
        self._acc, self._wss = acc[done:], self._steady_tail if wss is None else wss[done:]
        return self._emit(y, done)

    def finish(self, length: int) -> np.ndarray:
        """The remaining samples of a signal of ``length`` samples (after its last frame was added); then reset."""
        half = self.n_fft // 2
        want = int(length) + half - self._pos  # padded samples still to cover
        y = _normalised(self._acc[:want], self._wss[:want])
        if y.size < want:
            y = np.concatenate([y, np.zeros(want - y.size, np.float32)])
        rest = self._emit(y, max(want, 0))
        self.reset()
        return rest

    def _emit(self, y: np.ndarray, n: int) -> np.ndarray:
        """Advance ``n`` padded samples whose values are ``y``; return those at signal index >= 0."""
        skip = max(0, self.n_fft // 2 - self._pos)  # the front padding is not part of the signal
        self._pos += n
        return y[skip:]
