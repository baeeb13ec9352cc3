"""The golden model: DESIGN.md §2 in integer numpy, vectorised over samples. The oracle.

Speed without giving up exactness
---------------------------------
The synaptic currents of a layer are one matrix product of its 0/1 input spikes with its integer
weights. numpy's integer matmul gets no BLAS, so :func:`simulate` computes the product in floating
point instead, where that is provably exact, and in int64 where it is not:

* **Why a float product can be exact.** Each term of ``I_j = sum_i s_i * w_ji`` is ``0`` or the
  integer ``w_ji``. Whatever order, blocking or vector lanes the BLAS uses, every value it ever
  forms is a sum of a subset of those terms, so its magnitude is at most ``sum_i |w_ji|``. A float
  type with ``p`` mantissa bits (24 for float32, 53 for float64) represents every integer of
  magnitude ``<= 2**p``, so when that bound holds no addition ever rounds and the result is the
  exact integer, independent of summation order. (This needs a classical product; no BLAS uses
  Strassen-like schemes for gemm.)
* **Packing.** Most layers need far fewer bits than the float has, so ``M`` neurons share one
  float column: column ``g`` holds ``sum_m w[m*G + g] * 2**(b*m)``, with ``b`` bits per field
  chosen so that ``2 * B < 2**b``, ``B`` being the largest ``sum_i |w_ji|`` of the layer. The same
  subset-sum argument bounds every partial sum by ``sum_m B_(m*G+g) * 2**(b*m)``, which is checked
  against ``2**p`` from the weights (:func:`plan_currents`). The product is then the integer
  ``P = sum_m I_m * 2**(b*m)`` with every ``|I_m| <= B``; adding ``B * sum_m 2**(b*m)`` makes every
  field a digit in ``0 .. 2**b - 1``, read back with shifts and masks. The product is ``M`` times
  narrower, hence about ``M`` times cheaper.
* **Fallback.** A layer whose bound does not fit any allowed float type (or every layer, with
  ``float_types=()``) uses the int64 product, exact because ``B < 2**63`` for every valid network.

The neuron update
-----------------
The update stays in integers (:func:`lif_step`). Per neuron, with ``thr``, ``beta`` and
``bias`` the neuron's value (its own where the layer stores one per neuron), ``V`` the stored
membrane of the previous step (0 before the first), ``I`` the exact current of this step,
``cmp(x)`` = ``x >= thr`` (``fire: ">="``, version 1) or ``x > thr`` (``fire: ">"``), and
``sat(x)`` the clamp to the v_bits range, one step is, in this order:

1. ``r = cmp(V)`` if ``reset_timing`` is ``deferred`` or ``immediate_snntorch``, else ``r = 0``
   (the reset still pending from the previous step, read from the stored V).
2. ``V = 0`` if ``r`` and ``reset`` is ``zero`` and ``reset_timing`` is ``deferred`` (the reset
   to zero comes before the leak).
3. Leak: ``L = V - (V >> leak_shift)`` (arithmetic shift; ``L = V`` when ``leak_shift`` is 0);
   with ``beta``: ``L = (beta * V) >> beta_frac_bits`` (``beta_rounding: floor``) or
   ``L = (beta * V + 2**(beta_frac_bits - 1)) >> beta_frac_bits`` (``nearest``, halves up).
4. ``U = sat(L + I + bias - D)`` with ``D = thr`` if ``r`` and ``reset`` is ``subtract`` and
   ``reset_timing`` is ``deferred``, else ``D = 0``: one saturation after the whole sum (the
   deferred subtraction is not scaled by the leak).
5. ``s = cmp(U - thr * r)`` if ``reset_timing`` is ``immediate_snntorch``, else ``s = cmp(U)``.
6. ``V = U - thr * s`` if ``reset`` is ``subtract`` and ``reset_timing`` is ``immediate`` or
   ``immediate_snntorch``; ``V = 0 if s else U`` if ``reset`` is ``zero`` and ``reset_timing`` is
   ``immediate``; otherwise ``V = U`` (``deferred``: the stored V is the pre-reset one and step 1
   of the next step resets it; ``none``: no reset).
7. With ``state_levels``: ``V`` = the nearest state level (ties to the lower level).

``s`` is the spike of the step. A version-1 neuron (``fire: ">="``, ``reset_timing: immediate``,
shift leak, no bias, reset subtract or zero) is exactly DESIGN.md §2: ``r = 0``, steps 2 and 5
are the plain ones. ``deferred`` is snnTorch's ``reset_delay=True``: ``mem_t = beta * mem_{t-1} +
I_t - thr * [mem_{t-1} > thr]``; ``immediate_snntorch`` is snnTorch's ``reset_delay=False`` with
subtraction (``mem_t = beta * mem_{t-1} + I_t - thr * s_t``, where ``s_t`` compares ``beta *
mem_{t-1} + I_t - thr * [mem_{t-1} > thr]`` with the threshold).

Recurrent layers
----------------
A layer of ``kind: recurrent`` has ``fan_in = external + size`` columns: the current of neuron
``j`` at step ``t`` is ``I_j(t) = sum_i w[j, i] * x_i(t) + sum_k w[j, external + k] * s_k(t - 1)``
with ``x`` the previous layer's (or the input's) spikes of step ``t`` and ``s`` the layer's own
spikes of the step before (none at ``t = 0``): one exact sum, then the update above, unchanged.

:func:`simulate` runs layer by layer over all timesteps of a block of samples (layer ``l`` at
step ``t`` only needs layer ``l - 1`` at step ``t``, which is already computed), so each layer is
one large product per block, and the update works in place on one V array per layer, written to
the result arrays as it goes. A recurrent layer adds, before each step's update, the product of
its own spikes of the step before with its recurrent columns.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import SnnhwError
from ..network.format import Fire, Layer, Network, Neuron, Reset, ResetTiming, Rounding
from ..results import Result, check_inputs

__all__ = ["simulate", "lif_step", "snap_to_levels", "NEURON_MODELS", "FLOAT_TYPES",
           "CurrentPlan", "plan_currents"]

#: Float types the currents may be computed in, where exact, cheapest first in a tie.
FLOAT_TYPES = (np.float32, np.float64)

#: Samples whose neurons are updated together: memory stays bounded, whatever the batch.
BLOCK_SAMPLES = 1024
#: Samples per matrix product: the float copy of the spikes and the product stay in cache.
PRODUCT_SAMPLES = 64
#: What unpacking costs per neuron, in bytes of weights read by the product: a packed product
#: saves work in proportion to the fan-in, unpacking costs a few operations per neuron. Measured
#: on the 784-128 layer of benchmarks/golden_speed.py: about 2 ns per neuron and sample-step
#: against 18 ns per float32 column of fan-in 784 (3136 bytes).
UNPACK_COST = 384


def lif_step(v: np.ndarray, current: np.ndarray, layer: Layer, *,
             out: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Advance membrane potentials ``v`` by one timestep given input currents; return (v, spikes).

    Leak (floor shift), exact add, one saturation, threshold, reset, and (with a state
    codebook) the snap to the nearest state level: in that order. A neuron that uses a format
    version 2 field follows the module docstring's steps 1-7 instead, in int64. ``out`` is an
    optional pair of arrays (integer V, bool spikes) to write the result into; the first may be
    ``v`` itself.
    The integer type of ``v`` and ``current`` must hold ``V + I`` (and twice V with state levels).
    """
    neuron = layer.neuron
    if neuron.extensions():
        return _general_step(v, current, layer, out)
    if out is None:
        v_out = np.empty(np.broadcast_shapes(np.shape(v), np.shape(current)),
                         np.result_type(v, current))
        v_out[...] = v
        spikes = np.empty(v_out.shape, dtype=bool)
    else:
        v_out, spikes = out
        if v_out is not v:
            np.copyto(v_out, v)
    if neuron.leak_shift:
        v_out -= v_out >> neuron.leak_shift  # numpy >> on signed ints is arithmetic (floor)
    v_out += current
    np.clip(v_out, neuron.v_min, neuron.v_max, out=v_out)
    np.greater_equal(v_out, neuron.threshold, out=spikes)
    # The reset is arithmetic with the 0/1 spikes: writes masked by random spikes are far slower.
    fired = spikes.astype(v_out.dtype)
    if neuron.reset is Reset.SUBTRACT:
        fired *= neuron.threshold
        v_out -= fired
    elif neuron.reset is Reset.ZERO:
        np.subtract(1, fired, out=fired)  # 1 where the neuron did not spike, else 0
        v_out *= fired
    else:
        raise SnnhwError(f"layer {layer.name}: the golden model has no reset {neuron.reset!r}")
    if neuron.state_levels is not None:
        v_out[...] = snap_to_levels(v_out, neuron.state_levels)
    return v_out, spikes


@functools.lru_cache(maxsize=64)
def _per_neuron(neuron: Neuron, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Threshold, beta and bias of each of ``size`` neurons (int64; built once per layer)."""
    return tuple(neuron.values(field, size) for field in ("threshold", "beta", "bias"))


def _general_step(v: np.ndarray, current: np.ndarray, layer: Layer,
                  out: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """The update of the module docstring for every neuron, in int64."""
    neuron = layer.neuron
    thr, beta, bias = _per_neuron(neuron, layer.size)
    timing = neuron.reset_timing
    fire = np.greater_equal if neuron.fire is Fire.GE else np.greater
    x = np.asarray(v, dtype=np.int64)
    x = np.broadcast_to(x, np.broadcast_shapes(x.shape, np.shape(current))).copy()
    pending = timing is not ResetTiming.IMMEDIATE
    r = fire(x, thr) if pending else None  # step 1
    if pending and neuron.reset is Reset.ZERO:  # step 2 (zero with deferred)
        x[r] = 0
    if neuron.beta is not None:  # step 3
        frac = neuron.beta_frac_bits
        x *= beta
        if neuron.beta_rounding is Rounding.NEAREST:
            x += 1 << (frac - 1)
        x >>= frac
    elif neuron.leak_shift:
        x -= x >> neuron.leak_shift
    x += current  # step 4
    x += bias
    if timing is ResetTiming.DEFERRED and neuron.reset is Reset.SUBTRACT:
        x -= r * thr
    np.clip(x, neuron.v_min, neuron.v_max, out=x)
    if timing is ResetTiming.IMMEDIATE_SNNTORCH:  # step 5
        spikes = fire(x - r * thr, thr)
    else:
        spikes = fire(x, thr)
    if timing is not ResetTiming.DEFERRED:  # step 6
        if neuron.reset is Reset.SUBTRACT:
            x -= spikes * thr
        elif neuron.reset is Reset.ZERO:
            x[spikes] = 0
    if neuron.state_levels is not None:  # step 7
        x = snap_to_levels(x, neuron.state_levels)
    if out is None:
        return x, spikes
    v_out, s_out = out
    v_out[...] = x
    s_out[...] = spikes
    return v_out, s_out


#: The neuron models the golden model implements, by ``layer.neuron.model``: each is called like
#: :func:`lif_step`, ``(v, current, layer, out=(v, spikes)) -> (v, spikes)``, with V and currents in
#: the integer type :func:`plan_currents` chose (a model needing more headroom widens it there).
NEURON_MODELS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {"lif": lif_step}


def snap_to_levels(v: np.ndarray, levels: tuple[int, ...]) -> np.ndarray:
    """The nearest state level to each V; a V halfway between two levels takes the lower one."""
    level = np.asarray(levels, dtype=np.int64)
    doubled_midpoints = level[:-1] + level[1:]
    return level[np.searchsorted(doubled_midpoints, 2 * v, side="left")]


@dataclass(frozen=True, eq=False)
class CurrentPlan:
    """How :func:`simulate` computes one layer exactly (see the module docstring).

    Parameters
    ----------
    product : numpy.dtype
        float32 or float64 for an exact float product, int64 for the integer fallback.
    fields : int
        Neurons packed into one column of the product (1: no packing).
    field_bits : int
        Width ``b`` of a packed field.
    bound : int
        ``B``, the largest ``sum_i |w_ji|`` over the layer's neurons: no current is larger.
    weights : numpy.ndarray
        The (packed) weights, ``[fan_in, columns]`` in ``product``.
    state : numpy.dtype
        The integer type of currents and V: int32 where ``2 * (2**(v_bits-1) + B) < 2**31``
        (so ``V + I`` and the doubled V of the state-level snap fit), else int64.
    """

    product: np.dtype
    fields: int
    field_bits: int
    bound: int
    weights: np.ndarray
    state: np.dtype

    def currents(self, spikes: np.ndarray, out: np.ndarray) -> None:
        """Write the exact currents of 0/1 ``spikes`` [rows, fan_in] into ``out`` [rows, size]."""
        product = spikes.astype(self.product) @ self.weights
        if self.fields == 1:
            out[...] = product
            return
        # Offset every field to a digit in 0 .. 2**b - 1 (still exact: the sum stays below
        # 2**(b * fields) <= 2**p), then read the digits back with shifts and masks.
        product += self.bound * sum(1 << (self.field_bits * m) for m in range(self.fields))
        packed_bits = self.field_bits * self.fields
        packed = product.astype(np.int32 if packed_bits < 32 else np.int64)
        columns, mask = packed.shape[1], (1 << self.field_bits) - 1
        for m in range(self.fields):
            field = out[:, m * columns:(m + 1) * columns]
            np.right_shift(packed[:, :field.shape[1]], self.field_bits * m, out=field)
            if m < self.fields - 1:
                field &= mask
            field -= self.bound


def plan_currents(layer: Layer, float_types: Sequence[type] = FLOAT_TYPES,
                  pre: slice = slice(None)) -> CurrentPlan:
    """Choose the cheapest exact way to compute ``layer``'s currents (module docstring) from
    the pre-synaptic neurons ``pre`` (a recurrent layer's external or recurrent ones)."""
    whole = layer.dense_weights()  # [size, fan_in] int64
    weights = whole[:, pre]
    per_neuron = np.abs(weights).sum(axis=1)  # B_j: no current of neuron j is larger
    bound = int(per_neuron.max())
    v_bits = layer.neuron.v_bits
    # V must hold the sum of every column's current, whichever of them this plan computes.
    total = int(np.abs(whole).sum(axis=1).max())
    state = np.dtype(np.int32 if 2 * ((1 << (v_bits - 1)) + total) < 1 << 31
                     and not layer.neuron.extensions() else np.int64)
    field_bits = max(1, (2 * bound).bit_length())  # 2 * bound < 2**field_bits
    best = None
    for dtype in map(np.dtype, float_types):
        p = np.finfo(dtype).nmant + 1  # every integer of magnitude <= 2**p is exact
        for fields in range(1, max(1, p // field_bits) + 1):
            columns = -(-layer.size // fields)
            # Every partial sum of column g is bounded by sum_m B_(m*G+g) * 2**(b*m). Since
            # 2 * B < 2**b, that is below 2**(b * fields) <= 2**p when fields > 1 (and int64
            # holds it), so only fields == 1 can fail; the check is the proof, written out.
            padded = np.zeros(fields * columns, np.int64)
            padded[:layer.size] = per_neuron
            shifts = field_bits * np.arange(fields, dtype=np.int64)[:, None]
            if int((padded.reshape(fields, columns) << shifts).sum(axis=0).max()) > 1 << p:
                break  # more fields only raise the bound
            cost = columns * weights.shape[1] * dtype.itemsize
            cost += UNPACK_COST * layer.size if fields > 1 else 0
            if best is None or cost < best[0]:
                best = (cost, dtype, fields, columns)
    if best is None:
        return CurrentPlan(np.dtype(np.int64), 1, 64, bound, weights.T.copy(), state)
    _, dtype, fields, columns = best
    packed = np.zeros((weights.shape[1], columns), np.int64)
    for m in range(fields):
        block = weights[m * columns:(m + 1) * columns].T
        packed[:, :block.shape[1]] += block << (field_bits * m)
    return CurrentPlan(dtype, fields, field_bits, bound, packed.astype(dtype), state)


def neuron_model(layer: Layer) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """Return the update function of ``layer``'s neuron model, or refuse one we lack."""
    name = layer.neuron.model
    try:
        return NEURON_MODELS[name]
    except (KeyError, TypeError):  # TypeError: a name that cannot be a key
        raise SnnhwError(f"layer {layer.name}: the golden model has no neuron model {name!r} "
                         f"(it knows {', '.join(sorted(NEURON_MODELS))})") from None


def simulate(net: Network, inputs: np.ndarray, *,
             float_types: Sequence[type] = FLOAT_TYPES) -> Result:
    """Run ``net`` on spike ``inputs`` (0/1, [samples, timesteps, input_size]).

    Returns every spike of every layer, V after every timestep, and the final V.
    ``float_types`` are the float types the currents may be computed in where that is exact;
    ``()`` forces the int64 product everywhere (for tests).
    """
    inputs = check_inputs(net, inputs)
    models = [neuron_model(layer) for layer in net.layers]
    external = [slice(layer.external_fan_in) for layer in net.layers]
    plans = [plan_currents(layer, float_types, pre) for layer, pre in zip(net.layers, external)]
    # The recurrent columns of each recurrent layer, planned apart (None for the others).
    feedback = [plan_currents(layer, float_types, slice(pre.stop, None))
                if layer.fan_in > pre.stop else None for layer, pre in zip(net.layers, external)]
    samples, timesteps, _ = inputs.shape
    # Spikes are computed as bool and returned as the same bytes viewed as uint8.
    fired = {layer.name: np.empty((samples, timesteps, layer.size), bool) for layer in net.layers}
    trace = {layer.name: np.empty((samples, timesteps, layer.size), np.int64)
             for layer in net.layers}
    for start in range(0, samples, BLOCK_SAMPLES):
        block = slice(start, min(start + BLOCK_SAMPLES, samples))
        s = inputs[block]
        for layer, plan, back, model in zip(net.layers, plans, feedback, models):
            current = np.empty((len(s), timesteps, layer.size), plan.state)
            # The product in chunks that stay in cache; then the neurons, step by step.
            for chunk in range(0, len(s), PRODUCT_SAMPLES):
                rows = slice(chunk, chunk + PRODUCT_SAMPLES)
                plan.currents(s[rows].reshape(-1, s.shape[2]),
                              current[rows].reshape(-1, layer.size))
            v = np.zeros((len(s), layer.size), plan.state)
            spikes, v_trace = fired[layer.name][block], trace[layer.name][block]
            own = np.empty((len(s), layer.size), plan.state)
            for t in range(timesteps):
                if back is not None and t:  # own spikes of t - 1 (none before t = 0)
                    back.currents(spikes[:, t - 1].view(np.uint8), own)
                    current[:, t] += own
                model(v, current[:, t], layer, out=(v, spikes[:, t]))
                v_trace[:, t] = v
            s = spikes.view(np.uint8)
    return Result(spikes={name: s.view(np.uint8) for name, s in fired.items()},
                  v_final={name: v[:, -1].copy() for name, v in trace.items()},
                  v_trace=trace)
