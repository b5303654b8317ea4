"""Feature extractors and their inverses back to audio.

All STFT-based features share one frame grid: frame ``t`` is centred on sample
``t * hop_length`` (``librosa.stft(center=True)``), so a signal of ``n``
samples has ``1 + n // hop_length`` frames whatever the feature. The same
framing parameters (``n_fft``, ``hop_length``, ``win_length``, ``window``) are
used forward and inverse; they travel in ``params.json`` and ``run.json``.

=========  ==============================================  ============================================
name       features (n_frames, n_bins), float32             inverse to audio
=========  ==============================================  ============================================
fbank      log mel filterbank energies,                     mel-domain gain (denoised / noisy energies)
           ``python_speech_features.fbank`` (the seed's     spread to STFT bins through the same
           ``logfbank``), n_mels bands                       filterbank, applied to the noisy STFT, ISTFT
logmag     ``log(|STFT| + eps)``, n_fft // 2 + 1 bins       ``exp(x) - eps`` with the noisy phase
                                                            ("phase borrowing"), ``librosa.istft``
=========  ==============================================  ============================================
"""

from __future__ import annotations

import numpy as np
import librosa
import python_speech_features as psf

from .config import FeatureConfig
from .errors import AudioError

__all__ = ["FeatureExtractor", "mel_gain_to_stft_gain"]


class FeatureExtractor:
    """Forward features and their inverse for one :class:`~speech_dae.config.FeatureConfig`.

    Parameters
    ----------
    cfg : FeatureConfig
        Feature type and framing.
    sample_rate : int
        Hz.
    """

    def __init__(self, cfg: FeatureConfig, sample_rate: int):
        self.cfg = cfg
        self.sample_rate = int(sample_rate)
        self.kind = cfg.type
        self._mel_weights = None

    # ---------------------------------------------------------------- shapes
    @property
    def n_bins(self) -> int:
        """Width of one feature frame."""
        return self.cfg.n_mels if self.kind == "fbank" else self.cfg.n_fft // 2 + 1

    def n_frames(self, n_samples: int) -> int:
        """Frames for a signal of ``n_samples`` samples: ``1 + n_samples // hop_length``."""
        return 1 + int(n_samples) // self.cfg.hop_length

    def describe(self) -> str:
        c = self.cfg
        ms = 1000.0 / self.sample_rate
        if self.kind == "fbank":
            return (f"fbank: {c.n_mels} log mel filterbank energies, {c.fbank_win_length * ms:.0f} ms window, "
                    f"{c.hop_length * ms:.0f} ms hop")
        return (f"logmag: log|STFT|, n_fft {c.n_fft} ({self.n_bins} bins), {c.win_length * ms:.0f} ms {c.window} window, "
                f"{c.hop_length * ms:.0f} ms hop")

    # --------------------------------------------------------------- forward
    def stft(self, y: np.ndarray) -> np.ndarray:
        """Complex STFT on the shared frame grid.

        Parameters
        ----------
        y : np.ndarray [shape=(n_samples,)], float32

        Returns
        -------
        np.ndarray [shape=(n_frames, n_fft // 2 + 1)], complex64
        """
        c = self.cfg
        S = librosa.stft(np.asarray(y, dtype=np.float32), n_fft=c.n_fft, hop_length=c.hop_length,
                         win_length=c.win_length, window=c.window, center=True)
        return S.T

    def istft(self, S: np.ndarray, *, length: int) -> np.ndarray:
        """Inverse of :meth:`stft` (weighted overlap-add), cropped/padded to ``length`` samples.

        Parameters
        ----------
        S : np.ndarray [shape=(n_frames, n_fft // 2 + 1)], complex
        length : int

        Returns
        -------
        np.ndarray [shape=(length,)], float32
        """
        c = self.cfg
        y = librosa.istft(np.ascontiguousarray(S.T), n_fft=c.n_fft, hop_length=c.hop_length,
                          win_length=c.win_length, window=c.window, center=True, length=int(length))
        return y.astype(np.float32, copy=False)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        """Features of ``y``.

        Parameters
        ----------
        y : np.ndarray [shape=(n_samples,)], float32, mono, at ``sample_rate``

        Returns
        -------
        np.ndarray [shape=(n_frames, n_bins)], float32

        Raises
        ------
        AudioError
            If ``y`` is not 1-D or is shorter than one analysis window.
        """
        y = np.asarray(y, dtype=np.float32)
        min_len = self.cfg.fbank_win_length if self.kind == "fbank" else self.cfg.win_length
        if y.ndim != 1 or y.size < min_len:
            raise AudioError(f"signal of shape {y.shape} is shorter than one analysis window "
                             f"({min_len} samples); use longer clips")
        if self.kind == "logmag":
            return np.log(np.abs(self.stft(y)) + self.cfg.eps).astype(np.float32)
        return np.log(self._fbank_energies(y) + self.cfg.eps).astype(np.float32)

    def _fbank_energies(self, y: np.ndarray) -> np.ndarray:
        """Mel filterbank energies from ``python_speech_features.fbank``, centred on the STFT grid.

        The signal is zero-padded by half a window on each side so that frame
        ``t`` is centred on sample ``t * hop_length``, as in :meth:`stft`.
        """
        c = self.cfg
        half = c.fbank_win_length // 2
        padded = np.pad(y.astype(np.float64), (half, half))
        energies, _ = psf.fbank(padded, samplerate=self.sample_rate, winlen=c.fbank_win_length / self.sample_rate,
                                winstep=c.hop_length / self.sample_rate, nfilt=c.n_mels, nfft=c.n_fft,
                                lowfreq=c.fmin, highfreq=c.fmax, preemph=c.preemphasis)
        n = self.n_frames(y.size)
        if energies.shape[0] < n:  # never more than one frame short; repeat the last frame
            energies = np.concatenate([energies, np.repeat(energies[-1:], n - energies.shape[0], axis=0)])
        return energies[:n]

    # --------------------------------------------------------------- inverse
    @property
    def mel_weights(self) -> np.ndarray:
        """``(n_mels, n_fft // 2 + 1)`` filterbank of ``python_speech_features`` used by fbank."""
        if self._mel_weights is None:
            c = self.cfg
            self._mel_weights = psf.get_filterbanks(nfilt=c.n_mels, nfft=c.n_fft, samplerate=self.sample_rate,
                                                    lowfreq=c.fmin, highfreq=c.fmax)
        return self._mel_weights

    def to_audio(self, denoised: np.ndarray, noisy: np.ndarray, *, noisy_features: np.ndarray | None = None,
                 max_gain: float | None = 1.0) -> np.ndarray:
        """Turn denoised features back into a waveform, borrowing the noisy signal's phase.

        Parameters
        ----------
        denoised : np.ndarray [shape=(n_frames, n_bins)], float32
            Denoised features (same kind and grid as ``self(noisy)``).
        noisy : np.ndarray [shape=(n_samples,)], float32
            The noisy waveform the features came from; supplies the phase.
        noisy_features : np.ndarray [shape=(n_frames, n_bins)], optional
            ``self(noisy)`` if already computed (fbank only).
        max_gain : float or None
            Upper bound of the per-bin magnitude gain over the noisy STFT
            (1 = never louder than the input in any bin; None = unbounded).

        Returns
        -------
        np.ndarray [shape=(n_samples,)], float32

        Notes
        -----
        logmag: ``|S| = exp(x) - eps`` (clipped at 0) with the noisy STFT phase
        ("phase borrowing", as libdse's inference with ``librosa.istft``), bounded
        by ``max_gain * |S_noisy|``.
        fbank: the mel-domain power gain ``(exp(d) - eps) / (exp(n) - eps)`` is
        spread to STFT bins through the column-normalised filterbank, its square
        root multiplies the noisy STFT, and the result is inverted.
        """
        noisy = np.asarray(noisy, dtype=np.float32)
        S_noisy = self.stft(noisy)
        if denoised.shape != (S_noisy.shape[0], self.n_bins):
            raise AudioError(f"denoised features have shape {denoised.shape}, expected "
                             f"{(S_noisy.shape[0], self.n_bins)} for {noisy.size} samples")
        if self.kind == "logmag":
            magnitude = np.maximum(np.exp(denoised.astype(np.float64)) - self.cfg.eps, 0.0)
            if max_gain is not None:
                magnitude = np.minimum(magnitude, max_gain * np.abs(S_noisy))
            S = magnitude * np.exp(1j * np.angle(S_noisy))
        else:
            if noisy_features is None:
                noisy_features = self(noisy)
            e_noisy = np.exp(noisy_features.astype(np.float64)) - self.cfg.eps
            e_denoised = np.maximum(np.exp(denoised.astype(np.float64)) - self.cfg.eps, 0.0)
            mel_gain = np.where(e_noisy > 0, e_denoised / np.maximum(e_noisy, 1e-30), 1.0)
            gain = np.sqrt(mel_gain_to_stft_gain(mel_gain, self.mel_weights))
            S = S_noisy * (gain if max_gain is None else np.minimum(gain, max_gain))
        return self.istft(S, length=noisy.size)


def mel_gain_to_stft_gain(mel_gain: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Spread per-band gains to STFT bins through a mel filterbank.

    Each bin's gain is the filterbank-weighted mean of the gains of the bands
    that cover it; bins no band covers take the gain of the nearest covered bin.

    Parameters
    ----------
    mel_gain : np.ndarray [shape=(n_frames, n_mels)], float
    weights : np.ndarray [shape=(n_mels, n_fft // 2 + 1)], float, non-negative

    Returns
    -------
    np.ndarray [shape=(n_frames, n_fft // 2 + 1)], float64
        Equal to 1 everywhere when ``mel_gain`` is 1 everywhere.
    """
    coverage = weights.sum(axis=0)
    covered = np.flatnonzero(coverage > 0)
    norm = np.where(coverage > 0, coverage, 1.0)
    gain = (mel_gain @ weights) / norm
    if covered.size < weights.shape[1]:
        nearest = covered[np.clip(np.searchsorted(covered, np.arange(weights.shape[1])), 0, covered.size - 1)]
        gain = gain[:, nearest]
    return gain
