"""Feature extractors and their inverses back to audio.

All STFT-based features share one frame grid: frame ``t`` is centred on sample
``t * hop_length`` (:func:`speech_dae.stft.stft`, equal to ``librosa.stft(center=True)``), so a signal of ``n``
samples has ``1 + n // hop_length`` frames whatever the spectral feature. The
same framing parameters (``n_fft``, ``hop_length``, ``win_length``, ``window``)
are used forward and inverse; they travel in ``params.json`` and ``run.json``.
``waveform`` is the exception: one "frame" per sample.

=========  ==============================================  ============================================
name       features (n_frames, n_bins), float32             inverse to audio
=========  ==============================================  ============================================
fbank      log mel filterbank energies,                     mel-domain gain (denoised / noisy energies)
           ``python_speech_features.fbank`` (the seed's     spread to STFT bins through the same
           ``logfbank``), n_mels bands                       filterbank, applied to the noisy STFT, ISTFT
logmag     ``log(|STFT| + eps)``, n_fft // 2 + 1 bins       ``exp(x) - eps`` with the noisy phase
           (libdse's production feature)                    ("phase borrowing"), ISTFT
logmel     ``log(mel power + eps)``: ``|STFT|**2``          as fbank: mel-domain power gain spread to
           through ``librosa.filters.mel``, n_mels bands    STFT bins through the same librosa
           (libdse's log-mel variant)                       filterbank, noisy STFT, ISTFT
power      ``|STFT|**2``, uncompressed, n_fft // 2 + 1      ``sqrt(max(x, 0))`` with the noisy phase,
           bins (libdse's power variant)                    ISTFT
magnitude  ``|STFT|``, uncompressed, n_fft // 2 + 1         ``max(x, 0)`` with the noisy phase,
           bins (the thesis's input: Lusterman 2016;        ISTFT
           Liu, Smaragdis & Kim 2014)
waveform   the samples themselves, shape (n_samples, 1)     the model output's single channel, cropped
           (Conv1D audio-restoration design; the model      or zero-padded to the noisy length
           sees ``chunk_size``-sample chunks)
=========  ==============================================  ============================================

``power`` follows libdse and is **not** compressed: the network sees raw
``|STFT|**2`` (only the dataset's per-bin mean/std standardisation scales it),
so its inverse and mask are exact in the power domain; its dynamic range is
large (speech peaks against ~0 in silence), so for a log-compressed input use
``logmag`` (log magnitude) or ``logmel`` (log mel power) instead.

Every spectral type (all but ``waveform``) also defines the ideal ratio mask
of its linear magnitude (:meth:`FeatureExtractor.mask_target`) and its
application to noisy features (:meth:`FeatureExtractor.apply_mask`), used by
``training.target: mask``.
"""

from __future__ import annotations

import librosa
import numpy as np
import python_speech_features as psf

from .config import FeatureConfig
from .errors import AudioError, ConfigError
from .stft import istft, stft

__all__ = ["FeatureExtractor", "mel_gain_to_stft_gain", "SPECTRAL_TYPES"]

#: Feature types with a time-frequency magnitude (mask targets, phase-borrowing inverses).
SPECTRAL_TYPES = ("fbank", "logmag", "logmel", "power", "magnitude")
#: Feature types whose bins are mel bands.
_MEL_TYPES = ("fbank", "logmel")


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
        """Width of one frame: n_mels (fbank, logmel), n_fft // 2 + 1 (logmag, power, magnitude), 1 (waveform)."""
        if self.kind in _MEL_TYPES:
            return self.cfg.n_mels
        if self.kind == "waveform":
            return 1
        return self.cfg.n_fft // 2 + 1

    @property
    def is_spectral(self) -> bool:
        """True for the time-frequency features (:data:`SPECTRAL_TYPES`), False for ``waveform``."""
        return self.kind in SPECTRAL_TYPES

    def n_frames(self, n_samples: int) -> int:
        """Frames for a signal of ``n_samples`` samples.

        ``1 + n_samples // hop_length`` for the spectral features; ``n_samples``
        for ``waveform`` (one frame per sample).
        """
        if self.kind == "waveform":
            return int(n_samples)
        return 1 + int(n_samples) // self.cfg.hop_length

    def describe(self) -> str:
        c = self.cfg
        ms = 1000.0 / self.sample_rate
        if self.kind == "fbank":
            return (
                f"fbank: {c.n_mels} log mel filterbank energies, {c.fbank_win_length * ms:.0f} ms window, "
                f"{c.hop_length * ms:.0f} ms hop"
            )
        if self.kind == "logmel":
            return (
                f"logmel: log mel power, {c.n_mels} librosa mel bands from n_fft {c.n_fft}, "
                f"{c.win_length * ms:.0f} ms {c.window} window, {c.hop_length * ms:.0f} ms hop"
            )
        if self.kind in ("power", "magnitude"):
            what = "|STFT|^2" if self.kind == "power" else "|STFT|"
            return (
                f"{self.kind}: {what} (uncompressed), n_fft {c.n_fft} ({self.n_bins} bins), "
                f"{c.win_length * ms:.0f} ms {c.window} window, {c.hop_length * ms:.0f} ms hop"
            )
        if self.kind == "waveform":
            return (
                f"waveform: raw samples, chunk_size {c.chunk_size} samples ({c.chunk_size * ms:.0f} ms), "
                f"chunk hop {c.chunk_size // 2} samples"
            )
        return (
            f"logmag: log|STFT|, n_fft {c.n_fft} ({self.n_bins} bins), {c.win_length * ms:.0f} ms {c.window} window, "
            f"{c.hop_length * ms:.0f} ms hop"
        )

    # --------------------------------------------------------------- forward
    def stft(self, y: np.ndarray) -> np.ndarray:
        """Complex STFT on the shared frame grid.

        Parameters
        ----------
        y : np.ndarray [shape=(..., n_samples)], float32
            One signal, or a batch of equally long signals (one call, vectorised).

        Returns
        -------
        np.ndarray [shape=(..., n_frames, n_fft // 2 + 1)], complex64
        """
        c = self.cfg
        return stft(y, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length, window=c.window)

    def from_stft(self, S: np.ndarray) -> np.ndarray:
        """The features of a signal whose :meth:`stft` is ``S`` (every STFT-based type: not fbank or waveform).

        Parameters
        ----------
        S : np.ndarray [shape=(..., n_frames, n_fft // 2 + 1)], complex

        Returns
        -------
        np.ndarray [shape=(..., n_frames, n_bins)], float32
            As :meth:`__call__`: ``log(|S| + eps)``, ``log(|S|**2 @ mel_weights.T + eps)``, ``|S|**2`` or ``|S|``.

        Raises
        ------
        ConfigError
            For ``fbank`` (python_speech_features frames its own signal) and ``waveform``.
        """
        if self.kind in ("fbank", "waveform"):
            raise ConfigError(
                f"{self.kind} features are not computed from the shared STFT; call the extractor on the waveform"
            )
        if self.kind == "logmag":
            return np.log(np.abs(S) + self.cfg.eps).astype(np.float32)
        if self.kind == "logmel":
            return self._logmel_from_stft(S)
        if self.kind == "power":
            return _power(S).astype(np.float32)
        return np.abs(S).astype(np.float32)

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
        return istft(
            S, length=int(length), n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length, window=c.window
        )

    def __call__(self, y: np.ndarray) -> np.ndarray:
        """Features of ``y``.

        Parameters
        ----------
        y : np.ndarray [shape=(n_samples,)], float32, mono, at ``sample_rate``

        Returns
        -------
        np.ndarray [shape=(n_frames, n_bins)], float32
            fbank: ``log(E + eps)``, E the ``python_speech_features`` filterbank
            energies (power spectrum / n_fft, natural log);
            logmag: ``log(|STFT| + eps)``;
            logmel: ``log(|STFT|**2 @ mel_weights.T + eps)`` (natural log);
            power: ``|STFT|**2`` (linear, uncompressed);
            magnitude: ``|STFT|`` (linear, uncompressed);
            waveform: ``y[:, None]`` (shape ``(n_samples, 1)``).

        Raises
        ------
        AudioError
            If ``y`` is not 1-D or is shorter than one analysis window
            (waveform: if it is empty).
        """
        y = np.asarray(y, dtype=np.float32)
        if self.kind == "waveform":
            if y.ndim != 1 or y.size == 0:
                raise AudioError(f"waveform features need a non-empty 1-D signal, got shape {y.shape}")
            return y[:, None].copy()
        self.check_length(y)
        if self.kind == "fbank":
            return np.log(self._fbank_energies(y) + self.cfg.eps).astype(np.float32)
        return self.from_stft(self.stft(y))

    @property
    def min_samples(self) -> int:
        """Shortest signal with features: one analysis window (fbank: ``fbank_win_length``; waveform: 1)."""
        if self.kind == "waveform":
            return 1
        return self.cfg.fbank_win_length if self.kind == "fbank" else self.cfg.win_length

    def check_length(self, y: np.ndarray) -> None:
        """Raise AudioError unless ``y`` is 1-D and at least :attr:`min_samples` long (spectral types)."""
        if y.ndim != 1 or y.size < self.min_samples:
            raise AudioError(
                f"signal of shape {y.shape} is shorter than one analysis window ({self.min_samples} samples); "
                "use longer clips"
            )

    def _logmel_from_stft(self, S: np.ndarray) -> np.ndarray:
        """``log(|S|**2 @ mel_weights.T + eps)``, float32 ``(n_frames, n_mels)`` (libdse's log-mel power)."""
        mel = _power(S) @ self.mel_weights.T
        return np.log(mel + self.cfg.eps).astype(np.float32)

    def _fbank_energies(self, y: np.ndarray) -> np.ndarray:
        """Mel filterbank energies from ``python_speech_features.fbank``, centred on the STFT grid.

        The signal is zero-padded by half a window on each side so that frame
        ``t`` is centred on sample ``t * hop_length``, as in :meth:`stft`.
        """
        c = self.cfg
        half = c.fbank_win_length // 2
        padded = np.pad(y.astype(np.float64), (half, half))
        energies, _ = psf.fbank(
            padded,
            samplerate=self.sample_rate,
            winlen=c.fbank_win_length / self.sample_rate,
            winstep=c.hop_length / self.sample_rate,
            nfilt=c.n_mels,
            nfft=c.n_fft,
            lowfreq=c.fmin,
            highfreq=c.fmax,
            preemph=c.preemphasis,
        )
        n = self.n_frames(y.size)
        if energies.shape[0] < n:  # never more than one frame short; repeat the last frame
            energies = np.concatenate([energies, np.repeat(energies[-1:], n - energies.shape[0], axis=0)])
        return energies[:n]

    # --------------------------------------------------------------- inverse
    @property
    def mel_weights(self) -> np.ndarray:
        """Mel filterbank of the mel features, ``(n_mels, n_fft // 2 + 1)`` float64, cached.

        fbank: ``python_speech_features.get_filterbanks`` (triangles of peak 1);
        logmel (and the STFT types): ``librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax)``
        (Slaney mel scale and area normalisation, librosa's defaults).
        """
        if self._mel_weights is None:
            c = self.cfg
            if self.kind == "fbank":
                self._mel_weights = psf.get_filterbanks(
                    nfilt=c.n_mels, nfft=c.n_fft, samplerate=self.sample_rate, lowfreq=c.fmin, highfreq=c.fmax
                )
            else:
                self._mel_weights = librosa.filters.mel(
                    sr=self.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax, dtype=np.float64
                )
        return self._mel_weights

    def to_audio(
        self,
        denoised: np.ndarray,
        noisy: np.ndarray,
        *,
        noisy_features: np.ndarray | None = None,
        max_gain: float | None = 1.0,
        min_gain: float | None = None,
    ) -> np.ndarray:
        """Turn denoised features back into a waveform, borrowing the noisy signal's phase.

        Parameters
        ----------
        denoised : np.ndarray [shape=(n_frames, n_bins)], float32
            Denoised features (same kind and grid as ``self(noisy)``). For
            waveform any number of rows ``(n, 1)`` (or 1-D ``(n,)``).
        noisy : np.ndarray [shape=(n_samples,)], float32
            The noisy waveform the features came from; supplies the phase.
        noisy_features : np.ndarray [shape=(n_frames, n_bins)], optional
            ``self(noisy)`` if already computed (fbank and logmel only; ignored otherwise).
        max_gain : float or None
            Upper bound of the per-bin magnitude gain over the noisy STFT
            (1 = never louder than the input in any bin; None = unbounded).
            Not used by waveform.
        min_gain : float in (0, 1] or None
            Lower bound of that gain: the attenuation limit (``10 ** (-atten_lim_db / 20)``, as
            DeepFilterNet's ``--atten-lim``): no bin is attenuated by more than this, so some of the
            noise stays and less of the speech is lost. Waveform runs mix instead:
            ``(1 - min_gain) * denoised + min_gain * noisy`` (dry/wet). None (default): no limit.

        Returns
        -------
        np.ndarray [shape=(n_samples,)], float32

        Raises
        ------
        AudioError
            If ``denoised`` does not have the shape of ``self(noisy)``
            (waveform: if it is not ``(n, 1)`` or ``(n,)``).

        Notes
        -----
        logmag: ``|S| = exp(x) - eps`` (clipped at 0) with the noisy STFT phase
        ("phase borrowing", as libdse's inference with ``librosa.istft``; here :func:`speech_dae.stft.istft`), bounded
        by ``max_gain * |S_noisy|``.
        power: ``|S| = sqrt(max(x, 0))``, magnitude: ``|S| = max(x, 0)``, with the
        noisy phase, bounded the same way.
        fbank and logmel: the mel-domain power gain ``(exp(d) - eps) / (exp(n) - eps)``
        is spread to STFT bins through the column-normalised filterbank
        (:func:`mel_gain_to_stft_gain`, :attr:`mel_weights`), its square root,
        capped at ``max_gain``, multiplies the noisy STFT, and the result is inverted.
        For fbank this is an approximation: the gains come from the seed's 16 ms rectangular
        frames and are applied to the 32 ms Hann STFT (``win_length``) of the synthesis. With
        oracle (clean) features on 40 corpus test mixtures it gives 1.4 dB less SI-SDR and 0.43 less
        PESQ-WB than the band gains of the synthesis frames themselves (13.0 against 14.4 dB, 2.06
        against 2.49), and a 16 ms synthesis window is worse
        (``benchmarks/fbank_inverse.py``, BENCHMARKS.md section "fbank-inverse").
        waveform: ``denoised[:, 0]`` cropped or zero-padded to ``noisy.size``
        (overlap-adding the model's chunks is the caller's business).
        """
        noisy = np.asarray(noisy, dtype=np.float32)
        if self.kind == "waveform":
            d = np.asarray(denoised)
            if d.ndim == 2 and d.shape[1] == 1:
                d = d[:, 0]
            elif d.ndim != 1:
                raise AudioError(f"denoised waveform has shape {d.shape}, expected (n_samples, 1)")
            out = np.zeros(noisy.size, np.float32)
            n = min(d.size, noisy.size)
            out[:n] = d[:n]
            if min_gain is not None:
                out = ((1.0 - min_gain) * out + min_gain * noisy).astype(np.float32)
            return out
        S_noisy = self.stft(noisy)
        if denoised.shape != (S_noisy.shape[0], self.n_bins):
            raise AudioError(
                f"denoised features have shape {denoised.shape}, expected "
                f"{(S_noisy.shape[0], self.n_bins)} for {noisy.size} samples"
            )
        if self.kind == "fbank" and noisy_features is None:
            noisy_features = self(noisy)
        S = self.denoised_stft(denoised, S_noisy, noisy_features=noisy_features, max_gain=max_gain, min_gain=min_gain)
        return self.istft(S, length=noisy.size)

    def denoised_stft(
        self,
        denoised: np.ndarray,
        S_noisy: np.ndarray,
        *,
        noisy_features: np.ndarray | None = None,
        max_gain: float | None = 1.0,
        min_gain: float | None = None,
    ) -> np.ndarray:
        """The STFT that :meth:`to_audio` inverts: denoised features on the noisy STFT (phase borrowing).

        Works on any run of frames (a whole signal, or the newest frames of a stream).

        Parameters
        ----------
        denoised : np.ndarray [shape=(n_frames, n_bins)], float32
        S_noisy : np.ndarray [shape=(n_frames, n_fft // 2 + 1)], complex
            :meth:`stft` of the noisy signal, the same frames.
        noisy_features : np.ndarray [shape=(n_frames, n_bins)], optional
            The noisy features of those frames; required for ``fbank`` (computed from ``S_noisy`` for logmel).
        max_gain, min_gain : float or None
            As :meth:`to_audio`.

        Returns
        -------
        np.ndarray [shape=(n_frames, n_fft // 2 + 1)], complex

        Raises
        ------
        ConfigError
            For ``fbank`` without ``noisy_features`` (its frames are not the STFT's), and for ``waveform``.
        """
        self._require_spectral("denoised_stft")
        if self.kind not in _MEL_TYPES:
            magnitude = self._linear_magnitude(denoised)
            if max_gain is not None:
                magnitude = np.minimum(magnitude, max_gain * np.abs(S_noisy))
            if min_gain is not None:
                magnitude = np.maximum(magnitude, min_gain * np.abs(S_noisy))
            return magnitude * np.exp(1j * np.angle(S_noisy))
        noisy_features = self._mel_features(S_noisy, noisy_features)
        e_noisy = np.exp(noisy_features.astype(np.float64)) - self.cfg.eps
        e_denoised = np.maximum(np.exp(denoised.astype(np.float64)) - self.cfg.eps, 0.0)
        mel_gain = np.where(e_noisy > 0, e_denoised / np.maximum(e_noisy, 1e-30), 1.0)
        gain = np.sqrt(mel_gain_to_stft_gain(mel_gain, self.mel_weights))
        gain = gain if max_gain is None else np.minimum(gain, max_gain)
        return S_noisy * (gain if min_gain is None else np.maximum(gain, min_gain))

    def masked_stft(
        self,
        S_noisy: np.ndarray,
        mask: np.ndarray,
        *,
        noisy_features: np.ndarray | None = None,
        max_gain: float | None = 1.0,
        min_gain: float | None = None,
    ) -> np.ndarray:
        """``denoised_stft(apply_mask(noisy_features, mask), S_noisy)`` in one step where that is exact.

        For the STFT magnitude types (logmag, power, magnitude) the denoised magnitude is ``mask * |S|``,
        so the result is ``S_noisy * max(min(clip(mask, 0, 1), max_gain), min_gain)`` in float32: one
        multiply instead of the log / exp round trip (same values up to float rounding, tested). The mel
        types take the round trip through :meth:`apply_mask` and :meth:`denoised_stft`.

        Parameters
        ----------
        S_noisy : np.ndarray [shape=(n_frames, n_fft // 2 + 1)], complex64
        mask : np.ndarray [shape=(n_frames, n_bins)], float32
            The model's gain.
        noisy_features : np.ndarray [shape=(n_frames, n_bins)], optional
            Mel types: the noisy features of those frames (fbank: required).
        max_gain, min_gain : float or None
            As :meth:`to_audio`.

        Returns
        -------
        np.ndarray [shape=(n_frames, n_fft // 2 + 1)], complex64 (mel types: complex128)
        """
        self._require_spectral("masked_stft")
        if self.kind in _MEL_TYPES:
            noisy_features = self._mel_features(S_noisy, noisy_features)
            return self.denoised_stft(
                self.apply_mask(noisy_features, mask),
                S_noisy,
                noisy_features=noisy_features,
                max_gain=max_gain,
                min_gain=min_gain,
            )
        # max(min(clip(mask, 0, 1), max_gain), min_gain) as one clip (min_gain wins where the bounds cross)
        lo = 0.0 if min_gain is None else max(0.0, float(min_gain))
        hi = max(lo, 1.0 if max_gain is None else min(1.0, float(max_gain)))
        gain = np.minimum(np.maximum(np.asarray(mask, dtype=np.float32), np.float32(lo)), np.float32(hi))
        return S_noisy * gain

    def _mel_features(self, S_noisy: np.ndarray, noisy_features: np.ndarray | None) -> np.ndarray:
        """The noisy mel features of the frames of ``S_noisy``: given, or (logmel) computed from it."""
        if noisy_features is not None:
            return noisy_features
        if self.kind == "fbank":
            raise ConfigError("fbank needs the noisy features of the same frames (noisy_features=)")
        return self._logmel_from_stft(S_noisy)

    def _linear_magnitude(self, x: np.ndarray) -> np.ndarray:
        """The ``|STFT|`` that logmag / power / magnitude features encode, float64, >= 0."""
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "logmag":
            return np.maximum(np.exp(x) - self.cfg.eps, 0.0)
        if self.kind == "power":
            return np.sqrt(np.maximum(x, 0.0))
        return np.maximum(x, 0.0)

    # ------------------------------------------------------------------ masks
    def _require_spectral(self, what: str) -> None:
        if not self.is_spectral:
            raise ConfigError(
                f"{what}: mask targets need a spectral feature ({', '.join(SPECTRAL_TYPES)}), "
                f"but features.type={self.kind!r}; set training.target=mapping or choose a "
                "spectral features.type"
            )

    def _check_mask_shapes(self, a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> None:
        if a.shape != b.shape or a.ndim < 1 or a.shape[-1] != self.n_bins:
            raise AudioError(
                f"{names[0]} {a.shape} and {names[1]} {b.shape} must have the same shape (..., n_bins={self.n_bins})"
            )

    def mask_target(self, noisy_features: np.ndarray, clean_features: np.ndarray) -> np.ndarray:
        """Ideal ratio mask of the linear magnitude implied by the features, in [0, 1].

        ``clip(|S| / |X|, 0, 1)`` where ``|.|`` is the linear magnitude each
        feature encodes: logmag ``exp(x) - eps`` (clipped at 0); power
        ``sqrt(max(x, 0))``; magnitude ``max(x, 0)``; fbank and logmel ``sqrt(exp(x))``, the square root
        of the band energy including the ``eps`` floor, i.e. ``exp((s - x) / 2)``.
        Where the noisy magnitude is 0 the mask is 1. The mask is the "ratio
        mask" (IRM-style magnitude ratio, Wang et al.) bounded at 1 so that
        :meth:`apply_mask` never amplifies, the same bound as ``max_gain=1``.

        Parameters
        ----------
        noisy_features, clean_features : np.ndarray [shape=(..., n_bins)], float
            Features of this extractor (any leading shape: one utterance
            ``(n_frames, n_bins)``, a batch of patches ``(batch, context, n_bins)``).
            Raw features, not normalised ones.

        Returns
        -------
        np.ndarray [shape=(..., n_bins)], float32, in [0, 1]

        Raises
        ------
        ConfigError
            For ``waveform`` features (no magnitude to mask).
        AudioError
            If the shapes differ or the last axis is not ``n_bins``.
        """
        self._require_spectral("mask_target")
        x = np.asarray(noisy_features, dtype=np.float64)
        s = np.asarray(clean_features, dtype=np.float64)
        self._check_mask_shapes(x, s, ("noisy_features", "clean_features"))
        if self.kind in _MEL_TYPES:
            mask = np.exp(0.5 * np.minimum(s - x, 0.0))  # sqrt(exp(s) / exp(x)), <= 1
        else:
            mx, ms = self._linear_magnitude(x), self._linear_magnitude(s)
            with np.errstate(divide="ignore", invalid="ignore"):
                mask = np.where(mx > 0, ms / np.where(mx > 0, mx, 1.0), 1.0)
        return np.clip(mask, 0.0, 1.0).astype(np.float32)

    def apply_mask(self, noisy_features: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Denoised features: the noisy linear magnitude times ``mask``, back in the feature's domain.

        ``mask`` is clipped to [0, 1] first. logmag ``log(m * (exp(x) - eps) + eps)``;
        power ``m**2 * x``; magnitude ``m * x``; fbank and logmel ``x + 2 log m`` (natural log of the
        band energy, the convention of :meth:`mask_target`), floored at
        ``min(x, log(eps))``, the value of an all-zero band. The result never
        exceeds ``x``; ``apply_mask(x, 1) == x`` and
        ``apply_mask(x, mask_target(x, s)) == s`` wherever the clean magnitude
        does not exceed the noisy one (up to float32 rounding).

        Parameters
        ----------
        noisy_features : np.ndarray [shape=(..., n_bins)], float
            Raw (not normalised) features of this extractor.
        mask : np.ndarray [shape=(..., n_bins)], float
            Magnitude gains, same shape.

        Returns
        -------
        np.ndarray [shape=(..., n_bins)], float32

        Raises
        ------
        ConfigError
            For ``waveform`` features.
        AudioError
            If the shapes differ or the last axis is not ``n_bins``.
        """
        self._require_spectral("apply_mask")
        x = np.asarray(noisy_features, dtype=np.float64)
        m = np.clip(np.asarray(mask, dtype=np.float64), 0.0, 1.0)
        self._check_mask_shapes(x, m, ("noisy_features", "mask"))
        eps = self.cfg.eps
        if self.kind in _MEL_TYPES:
            with np.errstate(divide="ignore"):
                out = np.maximum(x + 2.0 * np.log(m), np.minimum(x, np.log(eps)))
        elif self.kind == "logmag":
            out = np.minimum(np.log(m * np.maximum(np.exp(x) - eps, 0.0) + eps), x)
        elif self.kind == "power":
            out = m * m * x
        else:  # magnitude
            out = m * x
        out = np.where(m >= 1.0, x, out)  # exactly the input where nothing is removed
        return out.astype(np.float32)


def _power(S: np.ndarray) -> np.ndarray:
    """``|S|**2`` in float64 (``S`` complex)."""
    S = np.asarray(S)
    return S.real.astype(np.float64) ** 2 + S.imag.astype(np.float64) ** 2


def mel_gain_to_stft_gain(mel_gain: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Spread per-band gains to STFT bins through a mel filterbank.

    Each bin's gain is the filterbank-weighted mean of the gains of the bands
    that cover it; bins no band covers take the gain of the nearest covered bin.
    Works for any non-negative filterbank (``python_speech_features`` for fbank,
    ``librosa.filters.mel`` for logmel) and any leading shape of ``mel_gain``.

    Parameters
    ----------
    mel_gain : np.ndarray [shape=(..., n_mels)], float
    weights : np.ndarray [shape=(n_mels, n_fft // 2 + 1)], float, non-negative

    Returns
    -------
    np.ndarray [shape=(..., n_fft // 2 + 1)], float64
        Equal to 1 everywhere when ``mel_gain`` is 1 everywhere.
    """
    coverage = weights.sum(axis=0)
    covered = np.flatnonzero(coverage > 0)
    norm = np.where(coverage > 0, coverage, 1.0)
    gain = (mel_gain @ weights) / norm
    if covered.size < weights.shape[1]:
        nearest = covered[np.clip(np.searchsorted(covered, np.arange(weights.shape[1])), 0, covered.size - 1)]
        gain = gain[..., nearest]
    return gain
