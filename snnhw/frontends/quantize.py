"""A float spiking network in snnhw's neuron semantics, and its quantization to integers.

A :class:`FloatLayer` is one layer (dense, recurrent or conv2d, as :class:`Layer`) of neurons
that follow the golden model's update (:mod:`snnhw.golden.model`) in real numbers: ``beta``
is the leak multiplier, no rounding, no saturation. snnTorch's ``Leaky`` and NIR's ``LIF`` /
``IF`` are read into it (docs/nir.md has the mapping); :func:`quantize` turns a list of them into a
:class:`~snnhw.network.Network`:

* **scale**: each layer's membrane is measured in units of ``1 / k``: weights, bias and
  threshold are multiplied by ``k`` and rounded to integers. ``k = 1`` when they are integers
  already and the weights fit ``weight_bits`` (networks integer by construction stay exact);
  otherwise ``k = (2**(weight_bits - 1) - 1) / max |w|``, so the largest weight uses the whole
  signed range.
* **weights**: the uniform grid (every integer of ``weight_bits``), the codebook the layer uses
  being its distinct values; or ``codebook=M``: M values from a 1-D k-means of the scaled
  weights, rounded to integers. A weight that quantizes to 0 is pruned (index -1).
* **beta**: ``round(beta * 2**beta_frac_bits)``, rounding ``beta_rounding``; a layer whose beta
  is 1 everywhere has no leak at all (an IF neuron).
* **v_bits**: from a bound on |V| over ``timesteps`` steps (the sum of a neuron's |weights|,
  |bias| and threshold per step, times the steps, or divided by ``1 - beta`` when that is
  smaller), so that V never saturates: with exact weights, thresholds and beta the integer
  network computes every spike of the float one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError, SnnhwError
from ..network.connectivity import CONNECTIVITY, Conv2d, ConvGeometry
from ..network.format import (MAX_BETA_FRAC_BITS, MAX_V_BITS, MAX_WEIGHT_BITS, Fire, Layer,
                              Network, Neuron, Reset, ResetTiming, Rounding)

__all__ = ["FloatLayer", "quantize", "simulate_float", "agreement"]


@dataclass(eq=False)
class FloatLayer:
    """A fully connected layer of neurons in real numbers (one value per neuron each).

    Parameters
    ----------
    name : str
        The layer's name in the integer network.
    weight : numpy.ndarray
        ``[size, fan_in]``; current ``I = weight @ s + bias`` for input spikes ``s``
        (``kind`` recurrent: ``[size, external + size]``, the last columns reaching the layer
        from its own spikes of the previous timestep; conv2d: the kernel
        ``[out_channels, in_channels, K, K]`` sliding as ``conv`` says, as in :class:`Layer`).
    bias, beta, threshold : numpy.ndarray
        ``[size]`` each; ``0 <= beta <= 1``, ``threshold > 0``.
    reset : Reset
    reset_timing : ResetTiming
    fire : Fire
    """

    name: str
    weight: np.ndarray
    bias: np.ndarray
    beta: np.ndarray
    threshold: np.ndarray
    reset: Reset = Reset.SUBTRACT
    reset_timing: ResetTiming = ResetTiming.DEFERRED
    fire: Fire = Fire.GT
    kind: str = "dense"
    conv: ConvGeometry | None = None

    @property
    def size(self) -> int:
        return int(self.bias.shape[0])

    @property
    def external_fan_in(self) -> int:
        """Pre-synaptic neurons outside the layer: the previous layer's size (or the input's)."""
        columns = self.dense_weight().shape[1]
        return columns - self.size if self.kind == "recurrent" else columns

    def dense_weight(self) -> np.ndarray:
        """``[size, fan_in]``: the weight itself, or a conv2d kernel unrolled (its taps placed
        where :meth:`~snnhw.network.connectivity.Conv2d.unrolled` puts them)."""
        if self.kind != "conv2d":
            return self.weight
        taps = Conv2d(np.arange(self.weight.size).reshape(self.weight.shape), self.conv)
        unrolled = taps.unrolled()
        return np.where(unrolled >= 0, self.weight.reshape(-1)[unrolled], 0.0)


def _is_integer(values: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))


def _scale(layer: FloatLayer, weight_bits: int) -> float:
    """The layer's scale ``k`` (module docstring)."""
    top = (1 << (weight_bits - 1)) - 1
    largest = float(np.abs(layer.weight).max()) if layer.weight.size else 0.0
    if (_is_integer(layer.weight) and _is_integer(layer.bias) and _is_integer(layer.threshold)
            and largest <= top):
        return 1.0
    if largest == 0.0:
        return top / float(layer.threshold.max())
    return top / largest


def _kmeans(values: np.ndarray, count: int, iterations: int = 50) -> np.ndarray:
    """``count`` centres of 1-D ``values`` (Lloyd's algorithm from the quantiles)."""
    centres = np.quantile(values, (np.arange(count) + 0.5) / count)
    for _ in range(iterations):
        nearest = np.abs(values[:, None] - centres[None, :]).argmin(axis=1)
        for c in range(count):
            if np.any(nearest == c):
                centres[c] = values[nearest == c].mean()
    return centres


def _weights(scaled: np.ndarray, weight_bits: int, codebook: int | None
             ) -> tuple[np.ndarray, tuple[int, ...]]:
    """The index array and codebook of the scaled weights ``[size, fan_in]``."""
    top = (1 << (weight_bits - 1)) - 1
    if codebook is None:
        integer = np.clip(np.round(scaled), -top - 1, top).astype(np.int64)
    else:
        flat = scaled.ravel()
        centres = _kmeans(flat, min(codebook, len(np.unique(flat)))) if flat.size else \
            np.zeros(1)
        centres = np.unique(np.clip(np.round(centres), -top - 1, top))
        integer = centres[np.abs(scaled[..., None] - centres).argmin(axis=-1)].astype(np.int64)
    values = tuple(int(v) for v in np.unique(integer[integer != 0]))
    if not values:
        values = (0,)
    lookup = {v: k for k, v in enumerate(values)}
    index = np.full(integer.shape, -1, np.int32)
    for value, k in lookup.items():
        if value:
            index[integer == value] = k
    return index, values


def _per_neuron(values: np.ndarray) -> int | tuple[int, ...]:
    """A scalar where every neuron has the same value, else one per neuron."""
    values = [int(v) for v in values]
    return values[0] if len(set(values)) == 1 else tuple(values)


def _check_float(layer: FloatLayer, where: str) -> None:
    for field in ("weight", "bias", "beta", "threshold"):
        values = getattr(layer, field)
        if not np.all(np.isfinite(values)):
            raise SnnhwError(f"{where}: {field}: expected finite numbers, got "
                             f"{values[~np.isfinite(values)].ravel()[0]}")
    if np.any(layer.threshold <= 0):
        raise SnnhwError(f"{where}: threshold: expected numbers > 0, got "
                         f"{layer.threshold[layer.threshold <= 0][0]:g}")
    if np.any((layer.beta < 0) | (layer.beta > 1)):
        bad = layer.beta[(layer.beta < 0) | (layer.beta > 1)][0]
        raise SnnhwError(f"{where}: beta: expected numbers in 0..1, got {bad:g}")


def quantize(layers: list[FloatLayer], *, name: str, timesteps: int, weight_bits: int = 8,
             codebook: int | None = None, beta_frac_bits: int = 16,
             beta_rounding: Rounding = Rounding.NEAREST, where: str = "network") -> Network:
    """Quantize float ``layers`` into an integer :class:`Network` (module docstring).

    Errors name ``where`` and the layer.
    """
    if not isinstance(weight_bits, int) or not 2 <= weight_bits <= MAX_WEIGHT_BITS:
        raise ParameterError("weight_bits", f"expected an integer in 2..{MAX_WEIGHT_BITS}, "
                                            f"got {weight_bits!r}")
    if codebook is not None and (not isinstance(codebook, int) or not 1 <= codebook <= 1 <<
                                 weight_bits):
        raise ParameterError("codebook", f"expected an integer in 1..{1 << weight_bits} "
                                         f"(weight_bits {weight_bits}), got {codebook!r}")
    if not isinstance(beta_frac_bits, int) or not 1 <= beta_frac_bits <= MAX_BETA_FRAC_BITS:
        raise ParameterError("beta_frac_bits", f"expected an integer in 1..{MAX_BETA_FRAC_BITS}, "
                                               f"got {beta_frac_bits!r}")
    out = []
    for layer in layers:
        lwhere = f"{where}: layer {layer.name}"
        _check_float(layer, lwhere)
        k = _scale(layer, weight_bits)
        index, values = _weights(layer.weight * k, weight_bits, codebook)
        threshold = np.maximum(1, np.round(layer.threshold * k)).astype(np.int64)
        bias = np.round(layer.bias * k).astype(np.int64)
        beta_fields: dict = {}
        betas = None
        if np.any(layer.beta != 1):
            one = 1 << beta_frac_bits
            betas = np.clip(np.round(layer.beta * one), 0, one).astype(np.int64)
            beta_fields = dict(beta=_per_neuron(betas),
                               beta_bits=beta_frac_bits + (1 if betas.max() == one else 0),
                               beta_frac_bits=beta_frac_bits, beta_rounding=beta_rounding)
        conv = (layer.conv,) if layer.kind == "conv2d" else ()
        weights = CONNECTIVITY[layer.kind](index, *conv).weights(values)
        step = np.abs(weights).sum(axis=1) + np.abs(bias) + threshold + 1
        bound = int(step.max()) * timesteps
        if betas is not None and betas.max() < (1 << beta_frac_bits):
            bound = min(bound, int(np.ceil(step.max() / (1 - betas.max() / (1 << beta_frac_bits))
                                           )) + 1)
        bound = max(bound, int(threshold.max()) + 1, int(np.abs(bias).max()))
        v_bits = max(2, bound.bit_length() + 1)
        if v_bits > MAX_V_BITS:
            raise SnnhwError(f"{lwhere}: the membrane may reach {bound} over {timesteps} "
                             f"timesteps, more than {MAX_V_BITS}-bit V holds (fewer timesteps "
                             f"or weight bits would fit)")
        reset_timing = layer.reset_timing if layer.reset is not Reset.NONE else \
            ResetTiming.IMMEDIATE
        neuron = Neuron(threshold=_per_neuron(threshold), leak_shift=0, reset=layer.reset,
                        v_bits=v_bits, fire=layer.fire, reset_timing=reset_timing,
                        bias=_per_neuron(bias), **beta_fields)
        out.append(Layer(name=layer.name, index=index, codebook=values, weight_bits=weight_bits,
                         neuron=neuron, kind=layer.kind, conv=layer.conv))
    net = Network(name=name, input_size=layers[0].external_fan_in, layers=out,
                  timesteps=timesteps)
    net.validate(where)
    return net


def simulate_float(layers: list[FloatLayer], inputs: np.ndarray) -> list[np.ndarray]:
    """Run the float layers on 0/1 ``inputs`` [samples, timesteps, fan_in] with the golden
    model's steps in real numbers (no rounding, no saturation); return each layer's spikes."""
    out = []
    s = inputs.astype(np.float64)
    for layer in layers:
        weight, external = layer.dense_weight(), layer.external_fan_in
        currents = s @ weight[:, :external].T + layer.bias
        recurrent = weight[:, external:]  # no columns unless kind recurrent
        thr, beta = layer.threshold, layer.beta
        fire = np.greater if layer.fire is Fire.GT else np.greater_equal
        v = np.zeros((s.shape[0], layer.size))
        spikes = np.zeros(currents.shape, np.uint8)
        for t in range(s.shape[1]):
            timing = layer.reset_timing if layer.reset is not Reset.NONE else \
                ResetTiming.IMMEDIATE
            r = fire(v, thr) if timing is not ResetTiming.IMMEDIATE else np.zeros(v.shape, bool)
            if timing is ResetTiming.DEFERRED and layer.reset is Reset.ZERO:
                v = np.where(r, 0.0, v)
            u = beta * v + currents[:, t]
            if t and recurrent.size:  # own spikes of t - 1 (Layer's kind recurrent)
                u = u + spikes[:, t - 1] @ recurrent.T
            if timing is ResetTiming.DEFERRED and layer.reset is Reset.SUBTRACT:
                u = u - r * thr
            fired = fire(u - r * thr, thr) if timing is ResetTiming.IMMEDIATE_SNNTORCH else \
                fire(u, thr)
            if timing is not ResetTiming.DEFERRED and layer.reset is Reset.SUBTRACT:
                u = u - fired * thr
            elif timing is not ResetTiming.DEFERRED and layer.reset is Reset.ZERO:
                u = np.where(fired, 0.0, u)
            v = u
            spikes[:, t] = fired
        out.append(spikes)
        s = spikes.astype(np.float64)
    return out


def agreement(float_spikes: list[np.ndarray], integer_spikes: list[np.ndarray]
              ) -> dict[str, object]:
    """Per-layer spike agreement and prediction agreement (argmax of output spike counts, ties
    to the lowest index) of two runs of the same network."""
    layers = [float(np.mean(a == b)) for a, b in zip(float_spikes, integer_spikes)]
    pred_a = float_spikes[-1].sum(axis=1).argmax(axis=1)
    pred_b = integer_spikes[-1].sum(axis=1).argmax(axis=1)
    return {"layer_spike_agreement": layers,
            "prediction_agreement": float(np.mean(pred_a == pred_b)),
            "float_predictions": pred_a, "integer_predictions": pred_b}
