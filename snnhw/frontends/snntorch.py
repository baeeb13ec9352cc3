"""snnTorch networks in: ``from_module(nn.Sequential(Linear, Leaky, Linear, Leaky, ...))``.

Each ``snn.Leaky`` is read from the module itself (snnTorch 0.9 / 1.0,
``snntorch/_neurons/leaky.py``): it fires on ``mem > threshold``; ``reset_delay=True`` (the
default) is the format's ``reset_timing: deferred``, ``reset_delay=False`` is
``immediate_snntorch`` with subtraction and ``immediate`` with reset to zero (after a reset to
zero the stored membrane is never above threshold, so snnTorch's pending-reset term is always 0);
``reset_mechanism`` subtract | zero | none; ``beta`` (clamped to 0..1, as snnTorch's forward does)
and ``threshold`` may be per neuron. The ``nn.Linear`` before it gives the weights and the bias.
Then :func:`~snnhw.frontends.quantize.quantize` makes the integer network.
"""

from __future__ import annotations

import numpy as np

from ..errors import SnnhwError
from ..network.format import Fire, Network, Reset, ResetTiming, Rounding
from .quantize import FloatLayer, quantize

__all__ = ["from_module", "float_layers"]


def _per_neuron(value, size: int, where: str) -> np.ndarray:
    array = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value,
                       dtype=np.float64).reshape(-1)
    if array.size == 1:
        return np.full(size, float(array[0]))
    if array.size != size:
        raise SnnhwError(f"{where}: expected one value or one per neuron ({size}), got "
                         f"{array.size}")
    return array


def float_layers(module) -> list[FloatLayer]:
    """Read an ``nn.Sequential`` of alternating ``nn.Linear`` and ``snn.Leaky`` into float
    layers named fc1, fc2, ...; refuse anything else in one line naming the module."""
    import snntorch
    from torch import nn

    children = list(module.children()) if isinstance(module, nn.Sequential) else None
    if not children:
        raise SnnhwError(f"expected an nn.Sequential of nn.Linear and snn.Leaky, got "
                         f"{type(module).__name__}")
    if len(children) % 2:
        raise SnnhwError(f"module {len(children) - 1} ({type(children[-1]).__name__}): expected "
                         f"pairs of nn.Linear and snn.Leaky, got an odd number of modules")
    layers = []
    for number in range(0, len(children), 2):
        linear, leaky = children[number], children[number + 1]
        if type(linear) is not nn.Linear:
            raise SnnhwError(f"module {number} ({type(linear).__name__}): expected nn.Linear")
        if type(leaky) is not snntorch.Leaky:
            raise SnnhwError(f"module {number + 1} ({type(leaky).__name__}): expected "
                             f"snn.Leaky (other neurons are not supported)")
        where = f"module {number + 1} (Leaky)"
        size = linear.out_features
        if leaky.inhibition:
            raise SnnhwError(f"{where}: inhibition: not supported")
        if leaky.state_quant:
            raise SnnhwError(f"{where}: state_quant: not supported")
        if float(np.max(np.abs(_per_neuron(leaky.graded_spikes_factor, size, where) - 1))) != 0:
            raise SnnhwError(f"{where}: graded_spikes_factor: expected 1 (spikes are 0/1)")
        weight = linear.weight.detach().cpu().numpy().astype(np.float64)
        bias = (linear.bias.detach().cpu().numpy().astype(np.float64) if linear.bias is not None
                else np.zeros(size))
        reset = Reset(leaky.reset_mechanism)
        if reset is Reset.NONE:
            timing = ResetTiming.IMMEDIATE
        elif getattr(leaky, "reset_delay", True):  # snnTorch before reset_delay: deferred
            timing = ResetTiming.DEFERRED
        elif reset is Reset.SUBTRACT:
            timing = ResetTiming.IMMEDIATE_SNNTORCH
        else:
            timing = ResetTiming.IMMEDIATE
        layers.append(FloatLayer(
            name=f"fc{number // 2 + 1}", weight=weight, bias=bias,
            beta=np.clip(_per_neuron(leaky.beta, size, f"{where}: beta"), 0.0, 1.0),
            threshold=_per_neuron(leaky.threshold, size, f"{where}: threshold"),
            reset=reset, reset_timing=timing, fire=Fire.GT))
        if number and layers[-2].size != linear.in_features:
            raise SnnhwError(f"module {number} (Linear): expected {layers[-2].size} inputs "
                             f"(the previous layer's size), got {linear.in_features}")
    return layers


def from_module(module, *, timesteps: int, weight_bits: int = 8, codebook: int | None = None,
                beta_frac_bits: int = 16, beta_rounding: Rounding | str = Rounding.NEAREST,
                name: str = "snntorch") -> Network:
    """The integer network of an snnTorch ``nn.Sequential`` (module docstring), for inputs of
    0/1 spikes over ``timesteps`` steps; quantization as in
    :func:`~snnhw.frontends.quantize.quantize`."""
    return quantize(float_layers(module), name=name, timesteps=timesteps,
                    weight_bits=weight_bits, codebook=codebook, beta_frac_bits=beta_frac_bits,
                    beta_rounding=Rounding(beta_rounding), where=name)
