"""A layer's connectivity: which synapses a presynaptic spike reaches, by layer ``kind``.

The plan (synapse layouts, cycle bounds) and the golden model ask a layer's connectivity, never
its index array directly, so a new kind of layer (recurrent, conv2d) is a new class here and an
entry in :data:`CONNECTIVITY`, not an edit in every consumer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = ["Connectivity", "Dense", "Recurrent", "ConvGeometry", "Conv2d", "CONNECTIVITY"]


class Connectivity(Protocol):
    """What every kind of layer answers about its synapses."""

    kind: str

    @property
    def size(self) -> int:
        """Post-synaptic neurons."""

    @property
    def fan_in(self) -> int:
        """Pre-synaptic neurons."""

    @property
    def synapse_count(self) -> int:
        """Synapses that exist (not pruned)."""

    def synapses_of(self, pre: int) -> tuple[np.ndarray, np.ndarray]:
        """The synapses a spike of pre-synaptic neuron ``pre`` reaches: (post-synaptic neurons
        in increasing order, their codebook indices)."""

    def fan_out(self) -> np.ndarray:
        """Synapses of each pre-synaptic neuron, int64 [fan_in]."""

    def unrolled(self) -> np.ndarray:
        """The codebook index of every (post, pre) pair, [size, fan_in], -1 where there is no
        synapse: the matrix the synapse memory stores (a convolution's, unrolled)."""

    def weights(self, codebook: tuple[int, ...]) -> np.ndarray:
        """The integer weight matrix int64 [size, fan_in], 0 where there is no synapse."""

    def stored_weights(self, codebook: tuple[int, ...]) -> np.ndarray:
        """The integer weights as the layer stores them, 0 where there is no synapse: the
        matrix of a dense layer, the kernel of a convolution (what sparsity counts)."""

    @property
    def external_fan_in(self) -> int:
        """Pre-synaptic neurons of the previous layer (or the input): ``fan_in`` less the
        layer's own neurons where it feeds back on itself."""

    def presynaptic(self, inputs: np.ndarray, own: np.ndarray) -> np.ndarray:
        """The 0/1 pre-synaptic spikes [..., timesteps, fan_in] of every timestep, given the
        previous layer's ``inputs`` [..., timesteps, external_fan_in] and the layer's ``own``
        spikes [..., timesteps, size]."""


class Dense:
    """Every pre-synaptic neuron may reach every post-synaptic one: ``index[j, i]`` selects the
    codebook entry of synapse i -> j, -1 where it was pruned."""

    kind = "dense"

    def __init__(self, index: np.ndarray):
        self.index = index

    @property
    def size(self) -> int:
        return int(self.index.shape[0])

    @property
    def fan_in(self) -> int:
        return int(self.index.shape[1])

    @property
    def synapse_count(self) -> int:
        return int(np.count_nonzero(self.index >= 0))

    def synapses_of(self, pre: int) -> tuple[np.ndarray, np.ndarray]:
        column = self.index[:, pre]
        targets = np.flatnonzero(column >= 0)
        return targets, column[targets].astype(np.int64)

    def fan_out(self) -> np.ndarray:
        return (self.index >= 0).sum(axis=0).astype(np.int64)

    def unrolled(self) -> np.ndarray:
        return self.index

    def weights(self, codebook: tuple[int, ...]) -> np.ndarray:
        table = np.asarray(tuple(codebook) + (0,), dtype=np.int64)
        return table[self.index]  # index -1 picks the appended 0

    def stored_weights(self, codebook: tuple[int, ...]) -> np.ndarray:
        return self.weights(codebook)

    @property
    def external_fan_in(self) -> int:
        return self.fan_in

    def presynaptic(self, inputs: np.ndarray, own: np.ndarray) -> np.ndarray:
        return inputs


class Recurrent(Dense):
    """A dense layer whose neurons also receive their own layer's spikes of the previous
    timestep (snnTorch ``RLeaky(all_to_all=True)``): ``index`` is ``[size, external + size]``,
    its last ``size`` columns the square recurrent matrix (column ``external + k`` holds the
    synapses of the layer's own neuron ``k``). Both matrices share the layer's codebook."""

    kind = "recurrent"

    @property
    def external_fan_in(self) -> int:
        return self.fan_in - self.size

    def presynaptic(self, inputs: np.ndarray, own: np.ndarray) -> np.ndarray:
        previous = np.zeros_like(own)
        previous[..., 1:, :] = own[..., :-1, :]  # own spikes of t arrive at t + 1; none at 0
        return np.concatenate([inputs, previous.astype(inputs.dtype)], axis=-1)


@dataclass(frozen=True)
class ConvGeometry:
    """Where a convolution's kernel slides: over an input of ``input_shape`` (channels, height,
    width), in steps of ``stride``, with ``padding`` zeros around each side."""

    input_shape: tuple[int, int, int]
    stride: int = 1
    padding: int = 0


class Conv2d:
    """A 2-D convolution (``torch.nn.Conv2d`` without bias, one stride and padding for both
    axes): ``index[oc, ic, ky, kx]`` selects the codebook entry of the kernel tap, -1 where it
    was pruned. Input neuron ``i = c*H*W + y*W + x`` is pixel (y, x) of channel c of the input
    (the previous layer's neurons, channel-major); output neuron ``j = oc*H'*W' + oy*W' + ox``
    likewise, with ``H' = (H + 2*padding - K) // stride + 1`` (W' alike).

    The currents are those of the dense layer of the unrolled (Toeplitz) matrix
    :meth:`unrolled`: ``U[j, i] = index[oc, c, ky, kx]`` where ``y = oy*stride - padding + ky``
    and ``x = ox*stride - padding + kx`` (each (j, i) pair has at most one tap), -1 elsewhere.
    :meth:`synapses_of` walks the kernel taps of one input event directly, as the hardware does.
    """

    kind = "conv2d"

    def __init__(self, index: np.ndarray, geometry: ConvGeometry):
        self.index, self.geometry = index, geometry
        self._unrolled: np.ndarray | None = None

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.index.shape[2]), int(self.index.shape[3])

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the output."""
        _, height, width = self.geometry.input_shape
        pad, stride = self.geometry.padding, self.geometry.stride
        (kh, kw) = self.kernel
        return (int(self.index.shape[0]), (height + 2 * pad - kh) // stride + 1,
                (width + 2 * pad - kw) // stride + 1)

    @property
    def size(self) -> int:
        return int(np.prod(self.output_shape))

    @property
    def fan_in(self) -> int:
        return int(np.prod(self.geometry.input_shape))

    @property
    def synapse_count(self) -> int:
        """Kernel taps stored (not pruned): the synapse memory holds the kernel once."""
        return int(np.count_nonzero(self.index >= 0))

    def unrolled(self) -> np.ndarray:
        """The index matrix int64 [size, fan_in] of the equivalent dense layer, -1 where no
        tap connects the pair (class docstring)."""
        if self._unrolled is None:
            channels, height, width = self.geometry.input_shape
            outs, out_h, out_w = self.output_shape
            (kh, kw), stride, pad = self.kernel, self.geometry.stride, self.geometry.padding
            oc, ic, ky, kx, oy, ox = np.ix_(*(np.arange(n) for n in (
                outs, channels, kh, kw, out_h, out_w)))
            y, x = oy * stride - pad + ky, ox * stride - pad + kx
            shape = (outs, channels, kh, kw, out_h, out_w)
            inside = np.broadcast_to((y >= 0) & (y < height) & (x >= 0) & (x < width), shape)
            post = np.broadcast_to(oc * out_h * out_w + oy * out_w + ox, shape)[inside]
            pre = np.broadcast_to(ic * height * width + y * width + x, shape)[inside]
            taps = np.broadcast_to(self.index[:, :, :, :, None, None], shape)[inside]
            unrolled = np.full((self.size, self.fan_in), -1, np.int64)
            unrolled[post, pre] = taps
            self._unrolled = unrolled
        return self._unrolled

    def synapses_of(self, pre: int) -> tuple[np.ndarray, np.ndarray]:
        """Walk the taps of input ``pre``'s channel: tap (ky, kx) reaches output pixel
        ((y + padding - ky) / stride, (x + padding - kx) / stride) where that lands on the
        stride grid and inside the output, for every output channel whose tap is kept."""
        channels, height, width = self.geometry.input_shape
        c, y, x = pre // (height * width), pre // width % height, pre % width
        outs, out_h, out_w = self.output_shape
        (kh, kw), stride, pad = self.kernel, self.geometry.stride, self.geometry.padding
        targets, indices = [], []
        for ky in range(kh):
            for kx in range(kw):
                dy, dx = y + pad - ky, x + pad - kx
                oy, ox = dy // stride, dx // stride
                if dy % stride or dx % stride or not (0 <= oy < out_h and 0 <= ox < out_w):
                    continue
                taps = self.index[:, c, ky, kx]
                kept = np.flatnonzero(taps >= 0)
                targets.append(kept * out_h * out_w + oy * out_w + ox)
                indices.append(taps[kept])
        if not targets:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        targets, indices = np.concatenate(targets), np.concatenate(indices)
        order = np.argsort(targets, kind="stable")
        return targets[order].astype(np.int64), indices[order].astype(np.int64)

    def fan_out(self) -> np.ndarray:
        return (self.unrolled() >= 0).sum(axis=0).astype(np.int64)

    def weights(self, codebook: tuple[int, ...]) -> np.ndarray:
        return np.asarray(tuple(codebook) + (0,), dtype=np.int64)[self.unrolled()]

    def stored_weights(self, codebook: tuple[int, ...]) -> np.ndarray:
        return np.asarray(tuple(codebook) + (0,), dtype=np.int64)[self.index]

    @property
    def external_fan_in(self) -> int:
        return self.fan_in

    def presynaptic(self, inputs: np.ndarray, own: np.ndarray) -> np.ndarray:
        return inputs


#: Connectivity class of each layer ``kind`` the format knows.
CONNECTIVITY: dict[str, type] = {"dense": Dense, "recurrent": Recurrent, "conv2d": Conv2d}
