"""Fully connected LIF networks whose integer mode is DESIGN.md §2, with surrogate gradients.

Each layer is in one of three modes:

- **float**: latent weights in threshold units, threshold 1.0, leak ``V -= V / 2**leak_shift``
  (beta = 1 - 2**-leak_shift), no saturation. The model that is trained first.
- **quantized**: a :class:`~snnhw.train.quant.WeightQuantizer` (or a cluster codebook) turns the
  latent weights into integer weights ``m * K`` and an integer threshold ``T`` on every forward
  pass; the state is in integer units and the step is exactly §2: floor leak
  (``V - floor(V / 2**k)``), the exact integer sum, one saturation to v_bits, ``V >= T``, reset
  by subtraction or to zero. Gradients pass straight through the rounding and the floor.
- **frozen**: fixed integer weights and threshold (after PTQ, or loaded from a network file).

Layers only talk through spikes, so a layer can process all timesteps of its input at once (one
matmul for the currents, then the per-step neuron loop); this computes the same spikes as §2's
layer-by-layer order at each timestep, faster. A recurrent layer (``recurrent=True``, the format's
``kind: recurrent``) has ``fan_in + size`` weight columns, the last ``size`` fed by its own spikes
of the step before, added in the neuron loop: one weight matrix, so quantizers, clustering and
pruning treat both matrices alike (one codebook). A convolutional layer (``conv=ConvLayer(...)``,
the format's ``kind: conv2d``) has a kernel ``[channels, in_channels, K, K]`` as its weight and
``torch.nn.functional.conv2d`` computes its currents (exactly in float64 for integer weights);
every method treats the kernel as it treats a dense matrix.

With a state scheme (``LIFLayer.state_scheme``, threshold-centred SQUAT levels, see
``snnhw.train.state``) V is snapped to the nearest state level after the reset, ties to the lower
level, exactly as the golden model's ``snap_to_levels``; the gradient passes straight through.

Every value of integer mode is an integer that float32 holds exactly (|V| < 2**23 as
``v_bits <= 24``); ``exact=True`` runs the same arithmetic in float64 so that even sums of very
wide layers stay exact. The spike is ``H(x) + (sig(kx) - sig(kx).detach())``: its forward value
is exactly the step function and its gradient is the sigmoid's, which is itself differentiable, as
Hutchinson's Hessian estimator needs (double back-propagation through the surrogate).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from ..errors import SnnhwError
from ..network.connectivity import Conv2d, ConvGeometry
from ..network.format import (Fire, Network, Neuron, Reset, ResetTiming, Rounding,
                              signed_range)
from .quant import WeightQuantizer, integer_scale, snap_to_threshold, ste
from .state import FixedLevels

__all__ = ["ConvLayer", "LIFLayer", "SNN", "spike", "snap_to_levels", "from_network",
           "LevelFunction"]

#: (integer threshold, v_bits) -> the sorted integer state levels of a layer
LevelFunction = Callable[[int, int], tuple[int, ...]]


def spike(x: torch.Tensor, slope: float) -> torch.Tensor:
    """Heaviside step of ``x`` (spike when ``x >= 0``) with a sigmoid surrogate gradient."""
    soft = torch.sigmoid(slope * x)
    return (x >= 0).to(x.dtype) + (soft - soft.detach())


def snap_to_levels(v: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """The nearest of the sorted ``levels`` to each V; a V halfway between two takes the lower.

    The golden model's rule: the index is the number of doubled midpoints ``l[i] + l[i+1]`` below
    ``2V`` (both exact for the integers of integer mode).
    """
    doubled_midpoints = levels[:-1] + levels[1:]
    return levels[torch.searchsorted(doubled_midpoints, 2 * v.contiguous())]


@dataclass(frozen=True)
class ConvLayer:
    """A convolutional layer's kernel: ``channels`` outputs of ``kernel`` x ``kernel`` taps,
    sliding as ``geometry`` says (:class:`~snnhw.network.connectivity.Conv2d`)."""

    channels: int
    kernel: int
    geometry: ConvGeometry

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.channels, self.geometry.input_shape[0], self.kernel, self.kernel)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the output."""
        return Conv2d(np.zeros(self.weight_shape, np.int32), self.geometry).output_shape

    @property
    def size(self) -> int:
        """Output neurons: channels x output height x output width."""
        return int(np.prod(self.output_shape))


class LIFLayer(nn.Module):
    """A dense (or recurrent, or convolutional) layer of LIF neurons.

    Parameters
    ----------
    fan_in, size : int
        Presynaptic and postsynaptic neuron counts.
    leak_shift, v_bits : int
        As in DESIGN.md §2; v_bits applies in integer mode only.
    reset : Reset
        Reset by subtraction of the threshold or to zero.
    recurrent : bool
        The neurons also receive their own spikes of the previous timestep (``weight`` then has
        ``fan_in + size`` columns, the last ``size`` the recurrent matrix).
    conv : ConvLayer, optional
        Make the layer a convolution (``weight`` is then its kernel; ``size`` must be
        ``conv.size`` and ``fan_in`` the product of its input shape).
    min_threshold : int
        Smallest integer threshold of a quantized layer (see ``quant.integer_scale``).
    slope : float
        Surrogate sigmoid slope, with the membrane measured in thresholds.
    """

    def __init__(self, fan_in: int, size: int, *, leak_shift: int = 3, v_bits: int = 16,
                 reset: Reset = Reset.SUBTRACT, recurrent: bool = False,
                 conv: ConvLayer | None = None, min_threshold: int = 64, slope: float = 5.0):
        super().__init__()
        self.fan_in, self.size, self.recurrent, self.conv = fan_in, size, recurrent, conv
        if conv is not None and (recurrent or size != conv.size
                                 or fan_in != int(np.prod(conv.geometry.input_shape))):
            raise ValueError(f"A conv layer of {conv} has {conv.size} neurons and fan-in "
                             f"{int(np.prod(conv.geometry.input_shape))} and no recurrence, not "
                             f"{size}, {fan_in}, recurrent={recurrent}")
        shape = conv.weight_shape if conv else (size, fan_in + size if recurrent else fan_in)
        self.leak_shift, self.v_bits, self.reset = leak_shift, v_bits, Reset(reset)
        self.min_threshold, self.slope = min_threshold, slope
        self.weight = nn.Parameter(torch.empty(shape))
        # 1 = synapse exists, 0 = pruned; a buffer so that it is saved and moved with the model
        self.register_buffer("mask", torch.ones(shape))
        self.quantizer: WeightQuantizer | None = None
        #: integer threshold imposed by state quantization (None: derived from the weight step)
        self.fixed_threshold: int | None = None
        #: (integer weights, threshold) of a frozen layer
        self.frozen: tuple[torch.Tensor, int] | None = None
        #: membrane state levels as a function of the threshold (None: V is kept whole)
        self.state_scheme: LevelFunction | None = None
        #: a format-version-2 neuron of a frozen layer (from_network): its update replaces §2's
        self.neuron: Neuron | None = None
        #: when True, forward keeps V after every timestep in ``v_trace`` [batch, T, size]
        self.keep_v = False
        self.v_trace: torch.Tensor | None = None
        #: when True, forward keeps (input spikes, currents) for Fisher scores
        self.record = False
        self.recorded: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def is_float(self) -> bool:
        return self.frozen is None and self.quantizer is None

    @property
    def v_range(self) -> tuple[int, int]:
        """Saturation bounds of the integer membrane."""
        return signed_range(self.v_bits)

    def state_levels(self, threshold: int) -> tuple[int, ...] | None:
        """Return the integer state levels at integer ``threshold`` (None without a scheme)."""
        return None if self.state_scheme is None else self.state_scheme(threshold, self.v_bits)

    def _level_tensor(self, threshold: int | None, like: torch.Tensor) -> torch.Tensor | None:
        """State levels in the units of V: integers, or threshold units for a float layer.

        A float layer uses the levels its integer threshold would have at ``min_threshold``
        (the grid quantization gives it), divided by that threshold.
        """
        levels = self.state_levels(self.min_threshold if threshold is None else threshold)
        if levels is None:
            return None
        scale = 1.0 if threshold is not None else float(self.min_threshold)
        return like.new_tensor(levels) / scale

    def integer_weights(self) -> tuple[torch.Tensor, int | None]:
        """Return (weights in state units, integer threshold), or (float weights, None)."""
        if self.frozen is not None:
            return self.frozen
        w = self.weight * self.mask
        if self.quantizer is None:
            return w, None
        snap = None if self.fixed_threshold is None else snap_to_threshold(self.fixed_threshold)
        levels, step = self.quantizer(w, self.mask, snap)
        m, threshold = integer_scale(float(step), self.min_threshold, self.fixed_threshold)
        return m * levels * self.mask, threshold

    def freeze(self) -> None:
        """Fix the current integer weights and threshold (they stop training)."""
        weights, threshold = self.integer_weights()
        if threshold is None:
            raise ValueError("Layer with float weights cannot be frozen; quantize it first")
        self.frozen = (weights.detach().clone(), threshold)
        self.quantizer = None

    def forward(self, spikes: torch.Tensor, exact: bool = False) -> torch.Tensor:
        """Map input spikes [batch, timesteps, fan_in] to output spikes [batch, timesteps, size]."""
        weights, threshold = self.integer_weights()
        if exact:
            if threshold is None:
                raise ValueError("exact=True needs every layer in integer mode")
            weights, spikes = weights.detach().double(), spikes.double()
        # The external columns for every timestep at once; the recurrent ones step by step.
        currents = self._currents(spikes, weights)
        feedback = weights[:, self.fan_in:].t() if self.recurrent else None
        if self.record:
            currents.retain_grad()  # dL/d(external current) is dL/d(whole current)
        out = self._neurons(currents, threshold, feedback)
        if self.record:
            own = torch.zeros_like(out)
            own[:, 1:] = out.detach()[:, :-1]  # the own spikes each step received
            pre = torch.cat([spikes, own], dim=2) if self.recurrent else spikes
            self.recorded = (pre.detach(), currents)
        return out

    def _currents(self, spikes: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The external currents [batch, T, size] of input ``spikes`` [batch, T, fan_in]."""
        if self.conv is None:
            return spikes @ weights[:, :self.fan_in].t()
        batch, steps, _ = spikes.shape
        images = spikes.reshape(batch * steps, *self.conv.geometry.input_shape)
        out = functional.conv2d(images, weights, stride=self.conv.geometry.stride,
                                padding=self.conv.geometry.padding)
        return out.reshape(batch, steps, self.size)

    def synapse_gradients(self, inputs: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """Each sample's gradient of the loss with respect to ``weight`` [n, *weight.shape],
        from the recorded pre-synaptic ``inputs`` [n, T, columns] and ``grad`` of the
        currents [n, T, size] (Fisher scores)."""
        if self.conv is None:
            return torch.einsum("ntj,nti->nji", grad, inputs)
        geometry, shape = self.conv.geometry, self.conv.weight_shape
        return torch.stack([torch.nn.grad.conv2d_weight(
            x.reshape(-1, *geometry.input_shape), shape,
            g.reshape(-1, *self.conv.output_shape),
            stride=geometry.stride, padding=geometry.padding) for x, g in zip(inputs, grad)])

    def _version_2_neurons(self, currents: torch.Tensor,
                           feedback: torch.Tensor | None) -> torch.Tensor:
        """The golden model's update (``snnhw.golden.model`` docstring, steps 1-7) in int64 for
        a frozen layer of a format-version-2 neuron; spikes in the currents' dtype."""
        neuron, size = self.neuron, self.size
        thr, beta, bias = (torch.from_numpy(neuron.values(field, size))
                           for field in ("threshold", "beta", "bias"))
        fire = torch.ge if neuron.fire is Fire.GE else torch.gt
        timing, reset = neuron.reset_timing, neuron.reset
        pending = timing is not ResetTiming.IMMEDIATE
        levels = None if neuron.state_levels is None else torch.tensor(neuron.state_levels)
        integer = torch.round(currents.detach()).to(torch.int64)  # exact integers already
        v = torch.zeros(currents.shape[0], size, dtype=torch.int64)
        no_reset = torch.zeros(v.shape, dtype=torch.int64)
        recurrent = None if feedback is None else torch.round(feedback.detach()).to(torch.int64)
        out, trace = [], []
        for t in range(currents.shape[1]):
            r = fire(v, thr).to(torch.int64) if pending else no_reset  # step 1
            if pending and reset is Reset.ZERO:  # step 2
                v = v * (1 - r)
            if neuron.beta is not None:  # step 3
                half = 1 << (neuron.beta_frac_bits - 1) \
                    if neuron.beta_rounding is Rounding.NEAREST else 0
                v = torch.div(v * beta + half, 1 << neuron.beta_frac_bits, rounding_mode="floor")
            elif neuron.leak_shift:
                v = v - torch.div(v, 1 << neuron.leak_shift, rounding_mode="floor")
            v = v + integer[:, t] + bias  # step 4
            if recurrent is not None and t:
                v = v + out[-1].to(torch.int64) @ recurrent
            if timing is ResetTiming.DEFERRED and reset is Reset.SUBTRACT:
                v = v - r * thr
            v = torch.clamp(v, *self.v_range)
            compared = v - r * thr if timing is ResetTiming.IMMEDIATE_SNNTORCH else v  # step 5
            s = fire(compared, thr).to(torch.int64)
            if timing is not ResetTiming.DEFERRED:  # step 6
                if reset is Reset.SUBTRACT:
                    v = v - s * thr
                elif reset is Reset.ZERO:
                    v = v * (1 - s)
            if levels is not None:  # step 7
                v = snap_to_levels(v, levels)
            out.append(s.to(currents.dtype))
            if self.keep_v:
                trace.append(v.to(currents.dtype))
        self.v_trace = torch.stack(trace, dim=1) if self.keep_v else None
        return torch.stack(out, dim=1)

    def _neurons(self, currents: torch.Tensor, threshold: int | None,
                 feedback: torch.Tensor | None = None) -> torch.Tensor:
        """Run the neurons on the external ``currents`` [batch, T, size], adding each step's own
        spikes of the step before times ``feedback`` [size, size] (a recurrent layer)."""
        if self.neuron is not None:
            return self._version_2_neurons(currents, feedback)
        integer = threshold is not None
        theta = float(threshold) if integer else 1.0
        divisor = float(1 << self.leak_shift)
        levels = self._level_tensor(threshold, currents)
        v = currents.new_zeros(currents.shape[0], currents.shape[2])
        out, trace = [], []
        for t in range(currents.shape[1]):
            if self.leak_shift:
                scaled = v / divisor  # exact: a power-of-2 division
                v = v - (ste(scaled, torch.floor(scaled)) if integer else scaled)
            v = v + currents[:, t]
            if feedback is not None and t:
                v = v + out[-1].to(feedback.dtype) @ feedback
            if integer:
                v = torch.clamp(v, *self.v_range)
            s = spike((v - theta) / theta, self.slope)
            # The reset is detached (as in snnTorch): its gradient mostly adds noise.
            if self.reset is Reset.SUBTRACT:
                v = v - s.detach() * theta
            else:
                v = v * (1.0 - s.detach())
            if levels is not None:
                v = ste(v, snap_to_levels(v.detach(), levels))
            out.append(s)
            if self.keep_v:
                trace.append(v.detach())
        self.v_trace = torch.stack(trace, dim=1) if self.keep_v else None
        return torch.stack(out, dim=1)


class SNN(nn.Module):
    """A stack of :class:`LIFLayer`; the class is the output neuron with the most spikes.

    Parameters
    ----------
    sizes : list of int
        Input size, then each layer's size (the last is the number of classes).
    recurrent : sequence of bool
        ``recurrent[l]`` makes layer ``l`` recurrent (missing entries: not).
    conv : sequence of ConvLayer or None
        ``conv[l]`` makes layer ``l`` convolutional (missing entries and None: not); its size
        in ``sizes`` must be the convolution's.
    **neuron
        Passed to every :class:`LIFLayer`.
    """

    def __init__(self, sizes: list[int], recurrent: Sequence[bool] = (),
                 conv: Sequence[ConvLayer | None] = (), **neuron):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"Sizes must list the input and at least one layer, not {sizes!r}")
        flags = list(recurrent) + [False] * (len(sizes) - 1 - len(recurrent))
        convs = list(conv) + [None] * (len(sizes) - 1 - len(conv))
        self.layers = nn.ModuleList(LIFLayer(a, b, recurrent=r, conv=c, **neuron)
                                    for a, b, r, c in zip(sizes, sizes[1:], flags, convs))
        self.reset_parameters()

    @property
    def input_size(self) -> int:
        return self.layers[0].fan_in

    def reset_parameters(self) -> None:
        """Initialise weights so that a rate-coded input makes hidden neurons fire.

        Uniform with a positive mean: zero-mean weights leave most LIF neurons silent at the start
        and silent neurons get almost no surrogate gradient. The mean is a guess that ignores the
        input's spike rate; :meth:`calibrate` sets it from data.
        """
        for layer in self.layers:
            bound = 1.5 / _inputs_per_neuron(layer) ** 0.5
            with torch.no_grad():
                layer.weight.uniform_(-bound, bound).add_(0.5 * bound)
                if layer.recurrent:  # zero-mean feedback: positive loops would saturate
                    layer.weight[:, layer.fan_in:].uniform_(-bound, bound)

    @torch.no_grad()
    def calibrate(self, spikes: torch.Tensor, rate: float) -> list[float]:
        """Shift each layer's (external) weights by one common offset so that the layer fires
        ``rate`` spikes per neuron and timestep on average on ``spikes`` [batch, T, inputs],
        layer after layer, each on the spikes of the one before (as LSUV does for ANN variances);
        return the rates reached.

        Without it the guessed positive mean saturates every layer after the first: a neuron
        whose membrane stays many thresholds above threshold fires at every step and passes no
        surrogate gradient (the sigmoid's derivative underflows to exactly 0), so a network of
        two hidden layers does not train at all. Bisection on the offset, deterministic.
        """
        rates = []
        for layer in self.layers:
            external = layer.weight[:, :layer.fan_in] if layer.recurrent else layer.weight
            centred = external - external.mean()
            unit = 1.0 / _inputs_per_neuron(layer)  # offset 1: all inputs at once, 1 threshold

            def rate_at(offset: float) -> float:
                external.copy_(centred + offset * unit)
                return float(layer(spikes).mean())

            low, high = -1.0, 1.0
            while rate_at(high) < rate and high < 2.0 ** 20:
                low, high = high, 2 * high
            for _ in range(20):
                middle = (low + high) / 2
                low, high = (middle, high) if rate_at(middle) < rate else (low, middle)
            rate_at(high)
            spikes = layer(spikes)
            rates.append(float(spikes.mean()))
        return rates

    def forward(self, spikes: torch.Tensor, exact: bool = False) -> torch.Tensor:
        """Return output spike counts [batch, classes] for input spikes [batch, T, inputs]."""
        return self.run(spikes, exact)[-1].sum(dim=1)

    def run(self, spikes: torch.Tensor, exact: bool = False) -> list[torch.Tensor]:
        """Return every layer's spikes, [batch, timesteps, size] each."""
        out = []
        for layer in self.layers:
            spikes = layer(spikes, exact)
            out.append(spikes)
        return out

    @property
    def is_integer(self) -> bool:
        return not any(layer.is_float for layer in self.layers)


def _inputs_per_neuron(layer: LIFLayer) -> int:
    """A neuron's inputs: the fan-in (a recurrent layer's external one), or a kernel's taps."""
    return layer.weight[0].numel() if layer.conv else layer.fan_in


#: The torch layer of each neuron model (:data:`snnhw.network.format.NEURON_MODELS`).
NEURON_LAYERS = {"lif": LIFLayer}


def from_network(net: Network) -> SNN:
    """Build a frozen torch model that computes exactly what the integer network ``net`` does.

    A layer with a format-version-2 neuron runs :meth:`LIFLayer._version_2_neurons`: the golden
    model's steps in int64, frozen (no surrogate gradient; such networks come from snnTorch or
    NIR, trained there)."""
    for spec in net.layers:
        if spec.neuron.model not in NEURON_LAYERS:
            raise SnnhwError(f"layer {spec.name}: neuron model {spec.neuron.model!r} has no torch "
                             f"layer (training has {', '.join(NEURON_LAYERS)})")
    sizes = [net.input_size] + [layer.size for layer in net.layers]
    model = SNN(sizes, recurrent=[spec.kind == "recurrent" for spec in net.layers],
                conv=[ConvLayer(spec.index.shape[0], spec.index.shape[2], spec.conv)
                      if spec.kind == "conv2d" else None for spec in net.layers])
    for layer, spec in zip(model.layers, net.layers):
        layer.leak_shift, layer.v_bits = spec.neuron.leak_shift, spec.neuron.v_bits
        layer.reset = spec.neuron.reset
        stored = spec.connectivity.stored_weights(spec.codebook)  # matrix or kernel
        weights = torch.from_numpy(stored.astype("float32"))
        layer.mask.copy_((torch.from_numpy(spec.index) >= 0).float())
        layer.frozen = (weights, spec.neuron.threshold)
        if spec.neuron.state_levels is not None:
            layer.state_scheme = FixedLevels(spec.neuron.state_levels)
        if spec.neuron.extensions():
            layer.neuron = spec.neuron
    return model
