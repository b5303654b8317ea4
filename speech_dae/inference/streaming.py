"""Streaming denoising: feed blocks of samples, get back the output samples that are final.

:class:`Streamer` is the state behind :meth:`Denoiser.process_block
<speech_dae.inference.engine.Denoiser.process_block>`, :meth:`~speech_dae.inference.engine.Denoiser.flush`
and :meth:`~speech_dae.inference.engine.Denoiser.reset_stream`. It works like the
block processing of ``speech-dae denoise`` (:mod:`speech_dae.inference.files`), with
blocks that end where the input ends so far:

- an output sample is *final* once no later input can change it, whatever the
  stream's final length: every STFT frame whose synthesis window reaches it,
  every patch covering those frames, and every analysis window of those
  patches' frames lies inside the input received, and (``patch_hop > 1``) no
  end-of-signal patch can cover its frames;
- each call that makes new samples final computes them with the steps of
  :meth:`Denoiser.__call__ <speech_dae.inference.engine.Denoiser.__call__>` on a
  segment of the buffer that starts on the model's grid (``align``, a multiple
  of ``hop_length * patch_hop`` samples, from :meth:`Denoiser.grid <speech_dae.inference.engine.Denoiser.grid>`)
  one analysis window before the frames needed: features, then only the
  patches not predicted by an earlier call, in one batched predict (their
  outputs are kept until no later output needs them, at most ``context`` + a
  few patches), the overlap average of the frames that reach the new samples,
  un-normalisation or the mask, and the inverse STFT. Frames, patches and
  overlap-adds are those of whole-signal processing, so the concatenated
  outputs equal ``Denoiser(signal)`` to float rounding (tested to 1e-5);
- :meth:`Streamer.flush` (and each emission of a waveform run, which
  recomputes the few chunks around every new half chunk of output) runs
  ``Denoiser.__call__`` itself on the buffer from ``margin`` samples (rounded
  to ``align``) before the first sample still to return: the past those
  samples depend on, i.e. the analysis window of the first frame of the first
  patch covering the first frame that reaches them (waveform: half a chunk);
  at most the symmetric block margin of ``speech-dae denoise``;
- the input buffer is trimmed after every call to what the next outputs and
  ``flush`` need, so it never holds more than ``margin + align + latency``
  samples between calls (3711 samples, 232 ms, for the logmag defaults).

Latency
-------
Output sample ``t`` is returned once input sample ``t + latency_samples`` has
been fed (after ``N`` input samples, all outputs before ``N - latency_samples``
are out). With ``patch_hop = 1``:

``latency = max((context - 1) * hop_length + R_analysis, R_stft) + L_synthesis - 1``

where ``(context - 1) * hop_length`` is the patch lookahead (the patch that
starts at a frame ends ``context - 1`` frames later), ``R_analysis`` the samples
from a frame's centre to the end of its analysis window (``win_length -
n_fft // 2 + (n_fft - win_length) // 2``, i.e. ``n_fft / 2`` when ``win_length ==
n_fft``; ``fbank``: ``fbank_win_length - fbank_win_length // 2``), ``R_stft`` the
same for the STFT the inverse borrows its phase from, and ``L_synthesis``
the samples the synthesis window reaches before a frame's centre
(``n_fft // 2 - (n_fft - win_length) // 2``). For the STFT features with
``win_length == n_fft`` that is ``(context - 1) * hop_length + n_fft - 1``:
1791 samples (111.9 ms at 16 kHz) for the defaults (context 11, hop 128, n_fft
512); ``fbank`` (16 ms analysis window): 1663 samples (103.9 ms). With
``patch_hop > 1`` a frame must also lie ``context`` frames before the last
frame received (an end patch off the grid could still cover it); that adds
nothing while ``R_analysis >= hop_length`` (the defaults), at most a hop
otherwise. :attr:`Streamer.latency_samples` is computed exactly, from the
emission rule itself, for any configuration.

Waveform runs stream too: chunks of ``chunk_size`` samples every
``chunk_size // 2``, Hann overlap-added; the latency is ``chunk_size - 1``
samples (2047 samples, 127.9 ms, for the default 2048-sample chunks).

Sequence inference without a frame step (e.g. a non-causal ``tcn``) emits
like waveform runs, recomputing the segment from ``margin`` samples back; its
patch lookahead ``(context - 1) * hop_length`` becomes the model's future
context ``future * hop_length``.

Frame-synchronous streaming
---------------------------
Causal models with a frame step (``Denoiser.stateful``: a causal ``tcn`` with
STFT features) stream through :class:`FrameStreamer` instead: every STFT frame
is computed as soon as its window is in, goes through the network's frame step
once, with the dilated convolutions' past frames carried as state
(:func:`speech_dae.models.build_step`; under onnxruntime the exported step
itself, without TensorFlow), and is overlap-added
(:class:`speech_dae.stft.OverlapAdd`). The latency is one STFT window:
``n_fft - 1`` samples (511 samples, 31.9 ms, at n_fft 512 and 16 kHz), as
in RNNoise and DeepFilterNet (which add look-ahead frames on top), and the
outputs equal ``Denoiser(signal)`` to float rounding.
"""

from __future__ import annotations

import numpy as np

from ..errors import AudioError
from ..framing import gather_patches, overlap_average
from ..stft import OverlapAdd, stft_frames

__all__ = ["Streamer", "FrameStreamer"]

#: Longest piece of one block denoised in one segment (samples); longer blocks are split.
MAX_PIECE = 1 << 18


class _Counts:
    """What both streamers count: ``_n`` samples fed and ``_emitted`` samples returned since the stream started."""

    _n = 0
    _emitted = 0

    @property
    def samples_in(self) -> int:
        """Samples fed since the stream started."""
        return self._n

    @property
    def samples_out(self) -> int:
        """Samples returned since the stream started."""
        return self._emitted


class Streamer(_Counts):
    """Streaming state of one :class:`~speech_dae.inference.engine.Denoiser` (one stream at a time).

    Parameters
    ----------
    den : Denoiser
        Any spectral or waveform run; its ``patch_hop``, ``max_gain`` and
        engine are used as they are.

    Attributes
    ----------
    latency_samples : int
        Output sample ``t`` is returned once input sample ``t + latency_samples``
        has been fed (see the module docstring for the formula).
    align, margin : int
        Read starts fall on multiples of ``align`` samples (``Denoiser.grid``),
        at least ``margin`` samples before the first sample still to emit.
    """

    def __init__(self, den):
        self.den = den
        self.align, grid_margin = den.grid(den.sample_rate)
        if den.waveform:
            self._min_len = 1
            left = den.context - den.patch_hop  # chunks covering a sample start < context before it, on the grid
        else:
            c = den.fx.cfg
            lpad = (c.n_fft - c.win_length) // 2  # librosa centres a shorter window inside the n_fft frame
            self._l_synth = c.n_fft // 2 - lpad  # synthesis window: samples before a frame's centre
            self._r_stft = lpad + c.win_length - c.n_fft // 2  # analysis window: samples from the centre on
            fbank = den.fx.kind == "fbank"
            self._r_feat = c.fbank_win_length - c.fbank_win_length // 2 if fbank else self._r_stft
            self._min_len = c.fbank_win_length if fbank else c.win_length
            l_feat = c.fbank_win_length // 2 + 1 if fbank else self._l_synth  # fbank: + 1 for the pre-emphasis
            self._lead = max(l_feat, self._l_synth)  # a frame's features and STFT start this far before its centre
            # the first frame reaching a sample, the first patch covering that frame, its first analysis window
            # frames of context before an output frame: the patch's (patches), or the model's past (sequence)
            back = den.sequence[0] if den.sequence is not None else den.context - 1
            left = self._r_stft + max(back * c.hop_length + l_feat, self._l_synth)
        # the block margin of `speech-dae denoise` also fits (it is symmetric, so larger): take the tight one
        self.margin = min(grid_margin, -(-left // self.align) * self.align)
        n0 = 8 * (self.margin + self.align + den.context * den.fx.cfg.hop_length)
        # final_end(n + align) == final_end(n) + align in steady state: one period gives the worst case
        self.latency_samples = int(max(n - self.final_end(n) for n in range(n0, n0 + self.align)))
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget the current stream; the next block starts a new one at sample 0."""
        self._buf = np.zeros(0, np.float32)
        self._start = 0  # absolute index of self._buf[0]
        self._n = 0  # samples fed
        self._emitted = 0  # samples returned
        # spectral runs: model outputs of the patches the next outputs still need (absolute start frames)
        self._pstarts = np.zeros(0, np.int64)
        self._ppred = np.zeros((0, self.den.context, self.den.fx.n_bins), np.float32)
        self._next_start = 0  # first patch start not predicted yet

    @property
    def buffered_samples(self) -> int:
        """Input samples held now (at most :attr:`max_buffered_samples` after every call)."""
        return int(self._buf.size)

    @property
    def max_buffered_samples(self) -> int:
        """Bound of :attr:`buffered_samples` between calls: ``margin + align + latency_samples``."""
        return self.margin + self.align + self.latency_samples

    # ------------------------------------------------------------- the grid
    def final_end(self, n: int) -> int:
        """How many leading output samples are final once ``n`` input samples have been fed.

        Parameters
        ----------
        n : int
            Samples fed so far (the stream may go on or end at any length >= ``n``).

        Returns
        -------
        int
            ``E`` in ``[0, n]``: output samples ``[0, E)`` equal whole-signal
            processing of every continuation of the input.
        """
        if n < self._min_len:
            return 0
        den = self.den
        if den.waveform:  # chunks at k * hop in the signal padded by ctx // 2 on both sides
            ctx, hop = den.context, den.patch_hop
            pad = ctx // 2
            k = (n + pad - ctx) // hop  # last chunk received in full
            end = min((k + 1) * hop - pad, n + pad - ctx)  # not reached by chunk k + 1, nor by an end chunk
        else:
            end = (self._last_frame(n) + 1) * den.fx.cfg.hop_length - self._l_synth  # frame t + 1 does not reach
        return int(max(0, min(end, n)))

    def _last_frame(self, n: int) -> int:
        """Last frame whose model output no later input can change (-1: none yet); spectral runs."""
        hop, ph, ctx = self.den.fx.cfg.hop_length, self.den.patch_hop, self.den.context
        if self.den.sequence is not None:  # the frame's future context and its STFT window are received
            t = min((n - self._r_feat) // hop - self.den.sequence[1], (n - self._r_stft) // hop)
            return t if n >= self._min_len else -1
        a = (n - self._r_feat) // hop - ctx + 1  # last patch start whose frames are all received
        if n < self._min_len or a < 0:
            return -1
        t = min((a // ph) * ph + ph - 1, (n - self._r_stft) // hop)  # covered by received patches only
        if ph > 1:  # an end patch (off the grid) could still cover frames from n // hop - ctx + 1 on
            t = min(t, n // hop - ctx)
        return t

    def _first_frame(self, s: int) -> int:
        """First frame whose (synthesis) window reaches sample ``s``; spectral runs."""
        return max(0, -(-(s - self._r_stft + 1) // self.den.fx.cfg.hop_length))

    def _read_start(self, keep: int) -> int:
        return max(0, (keep - self.margin) // self.align * self.align)

    # --------------------------------------------------------------- stream
    def process(self, block) -> np.ndarray:
        """Feed ``block`` and return the output samples that became final (possibly none).

        Parameters
        ----------
        block : array_like [shape=(n,)], float, mono, at the model's sample rate
            Any length, 0 included; float64 is converted to float32.

        Returns
        -------
        np.ndarray [shape=(m,)], float32
            The next ``m`` output samples (``m`` may be 0).

        Raises
        ------
        AudioError
            If ``block`` is not 1-D, not floating point (convert PCM first), or holds NaN/Inf.
            The stream is left as it was.
        """
        x = _check_block(block)
        outs = []
        for i in range(0, x.size, MAX_PIECE):  # a huge block is denoised piece by piece (bounded memory)
            piece = x[i : i + MAX_PIECE]
            self._buf = np.concatenate([self._buf, piece])
            self._n += piece.size
            end = self.final_end(self._n)
            if end > self._emitted:
                patches = not self.den.waveform and self.den.sequence is None
                outs.append(self._emit_frames(end) if patches else self._emit(end))
        return np.concatenate(outs) if outs else np.zeros(0, np.float32)

    def flush(self) -> np.ndarray:
        """Return the rest of the output (end of stream) and reset for a new stream.

        Returns
        -------
        np.ndarray [shape=(m,)], float32
            Together with every earlier output, as many samples as were fed.

        Raises
        ------
        AudioError
            If the stream (not empty) is shorter than one analysis window, as
            :meth:`Denoiser.__call__ <speech_dae.inference.engine.Denoiser.__call__>`
            would for such a signal. The stream is reset either way.
        """
        try:
            if self._emitted >= self._n:
                return np.zeros(0, np.float32)
            if self._n < self._min_len:
                raise AudioError(
                    f"the stream ended after {self._n} samples, shorter than one analysis window "
                    f"({self._min_len} samples); nothing to denoise"
                )
            return self._emit(self._n)
        finally:
            self.reset()

    def _emit(self, end: int) -> np.ndarray:
        """Denoise ``[read start, samples fed)`` with ``Denoiser.__call__``; return its part ``[emitted, end)``.

        Waveform runs, sequence inference without a frame step, and every run's :meth:`flush`
        (the end of the signal: end patch, end padding).
        """
        r0 = self._read_start(self._emitted)
        y = self.den(self._buf[r0 - self._start :])
        return self._done(y[self._emitted - r0 : end - r0], end)

    def _emit_frames(self, end: int) -> np.ndarray:
        """Spectral runs: outputs ``[emitted, end)``, predicting only the patches not predicted before.

        The steps of ``Denoiser.__call__`` on a segment that starts a window before
        the frames needed: features, the new patches in one batched predict (kept
        until no later output needs them), the overlap average of the frames that
        reach ``[emitted, end)``, un-normalisation (or the mask), inverse STFT.
        """
        den, ph, ctx = self.den, self.den.patch_hop, self.den.context
        hop = den.fx.cfg.hop_length
        t0, t1 = self._first_frame(self._emitted), self._last_frame(self._n)  # the frames that reach the outputs
        new = np.arange(self._next_start, t1 // ph * ph + 1, ph, dtype=np.int64)
        r0 = max(0, (min(t0, self._next_start) * hop - self._lead) // self.align * self.align)
        seg = self._buf[r0 - self._start :]
        feats = den.fx(seg)  # frames r0 // hop + k
        f0 = r0 // hop
        if new.size:
            x = den.norm.norm_x(feats[new[0] - f0 : new[-1] - f0 + ctx])
            patches = gather_patches(x, new - new[0], ctx)
            # Denoiser.predict_batch: Keras predict_on_batch runs one traced function (0.7 ms for type2 on one
            # patch, where an eager call costs ~7 ms of per-layer overhead on a small CPU)
            pred = [den.predict_batch(patches[i : i + den.batch_size]) for i in range(0, len(patches), den.batch_size)]
            self._pstarts = np.concatenate([self._pstarts, new])
            self._ppred = np.concatenate([self._ppred, *pred])
            self._next_start = int(new[-1]) + ph
        use = self._pstarts <= t1  # and >= t0 - ctx + 1: older ones were dropped
        starts = self._pstarts[use] - self._pstarts[use][0]
        frames = overlap_average(self._ppred[use], starts, int(starts[-1]) + ctx)
        frames = frames[t0 - self._pstarts[use][0] : t1 + 1 - self._pstarts[use][0]]
        noisy = feats[t0 - f0 : t1 + 1 - f0]
        denoised = feats.copy()  # frames outside [t0, t1] do not reach [emitted, end)
        denoised[t0 - f0 : t1 + 1 - f0] = (
            den.fx.apply_mask(noisy, frames) if den.target == "mask" else den.norm.denorm_y(frames)
        )
        y = den.fx.to_audio(denoised, seg, noisy_features=feats, max_gain=den.max_gain, min_gain=den.min_gain)
        keep = self._pstarts >= self._first_frame(end) - ctx + 1
        self._pstarts, self._ppred = self._pstarts[keep], self._ppred[keep]
        return self._done(y[self._emitted - r0 : end - r0], end)

    def _done(self, out: np.ndarray, end: int) -> np.ndarray:
        """Advance to ``end`` and trim the buffer to what the next outputs (and :meth:`flush`) need."""
        self._emitted = end
        keep = self._read_start(end)
        if not self.den.waveform and self.den.sequence is None:
            keep = min(
                keep,
                max(
                    0,
                    (min(self._first_frame(end), self._next_start) * self.den.fx.cfg.hop_length - self._lead)
                    // self.align
                    * self.align,
                ),
            )
        if keep > self._start:
            self._buf = self._buf[keep - self._start :].copy()
            self._start = keep
        return np.ascontiguousarray(out, dtype=np.float32)


class FrameStreamer(_Counts):
    """Frame-synchronous streaming of a causal model with a frame step (one stream at a time).

    Frame ``t`` (centred on sample ``t * hop_length``) is computed once input sample
    ``t * hop_length + n_fft // 2 - 1`` is in; all frames a block completes go through
    :meth:`Denoiser.step <speech_dae.inference.engine.Denoiser.step>` in one call with the
    carried state, and the overlap-add returns every sample no later frame reaches.
    Same interface as :class:`Streamer`.

    Parameters
    ----------
    den : Denoiser
        A run with ``den.stateful`` (causal sequence model, STFT features).

    Attributes
    ----------
    latency_samples : int
        ``n_fft - 1``: output sample ``t`` is returned once input sample ``t + n_fft - 1`` is in.
    max_buffered_samples : int
        ``n_fft - 1``: bound of :attr:`buffered_samples` between calls.

    Raises
    ------
    ConfigError
        If ``den`` has no frame step.
    """

    def __init__(self, den):
        den.initial_state()  # raises ConfigError for a run without a frame step
        self.den = den
        c = den.fx.cfg
        self.n_fft, self.hop = int(c.n_fft), int(c.hop_length)
        self._stft = dict(n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length, window=c.window)
        self.latency_samples = self.n_fft - 1
        self.max_buffered_samples = self.n_fft - 1  # the buffer starts at the next frame, whose window is not in
        self._ola = OverlapAdd(**self._stft)
        self.reset()

    def reset(self) -> None:
        """Forget the current stream; the next block starts a new one at sample 0."""
        self._pad = np.zeros(self.n_fft // 2, np.float32)  # the padded signal from the next frame's start on
        self._frames = 0  # frames computed
        self._n = 0
        self._emitted = 0
        self._state = self.den.initial_state()
        self._ola.reset()

    @property
    def buffered_samples(self) -> int:
        """Input samples held now (less than ``n_fft`` between calls)."""
        return int(self._pad.size)

    def process(self, block) -> np.ndarray:
        """Feed ``block`` and return the output samples that became final (see :meth:`Streamer.process`)."""
        x = _check_block(block)
        outs = []
        for i in range(0, x.size, MAX_PIECE):
            piece = x[i : i + MAX_PIECE]
            self._pad = np.concatenate([self._pad, piece])
            self._n += piece.size
            outs.append(self._run((self._n + self.n_fft // 2 - self.n_fft) // self.hop + 1))  # windows all in
        out = np.concatenate(outs) if outs else np.zeros(0, np.float32)
        self._emitted += out.size
        return out

    def flush(self) -> np.ndarray:
        """Return the rest of the output (end of stream) and reset (see :meth:`Streamer.flush`)."""
        try:
            if self._n == 0:
                return np.zeros(0, np.float32)
            if self._n < self.den.fx.min_samples:
                raise AudioError(
                    f"the stream ended after {self._n} samples, shorter than one analysis window "
                    f"({self.den.fx.min_samples} samples); nothing to denoise"
                )
            self._pad = np.concatenate([self._pad, np.zeros(self.n_fft // 2, np.float32)])  # the end padding
            out = [self._run(1 + self._n // self.hop), self._ola.finish(self._n)]
            return np.concatenate(out)
        finally:
            self.reset()

    def _run(self, n_frames: int) -> np.ndarray:
        """Compute frames ``[computed, n_frames)`` (their windows are in ``self._pad``); return new final samples."""
        if n_frames <= self._frames:
            return np.zeros(0, np.float32)
        k = n_frames - self._frames
        S = stft_frames(self._pad[: (k - 1) * self.hop + self.n_fft], **self._stft)
        feats = self.den.fx.from_stft(S)
        out, self._state = self.den.step(self.den.norm.norm_x(feats), self._state)
        y = self._ola.add(self.den.denoised_stft(S, feats, out))
        self._frames = n_frames
        self._pad = self._pad[k * self.hop :].copy()  # the next frame starts here
        return y


def _check_block(block) -> np.ndarray:
    x = np.asarray(block)
    if x.ndim != 1:
        raise AudioError(
            f"process_block takes mono blocks of shape (n_samples,), got shape {x.shape}; "
            "mix channels down first (e.g. block.mean(axis=1))"
        )
    if x.dtype.kind != "f":
        raise AudioError(
            f"process_block takes float samples in [-1, 1] (float32), got dtype {x.dtype}; "
            "convert PCM first (int16: block / 32768)"
        )
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise AudioError("block holds NaN or Inf samples")
    return x
