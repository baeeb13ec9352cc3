"""Spike inputs and run results shared by the golden model and co-simulation.

A result file (``R.npz``) holds ``spikes/<layer>`` (uint8 [samples, timesteps, size]),
``v_final/<layer>`` (int [samples, size]), ``counts`` (int [samples, outputs]) and ``pred``
(int [samples]) and ``v_trace/<layer>`` (int [samples, timesteps, size], V after each timestep);
co-simulation adds ``cycles`` (int [samples, timesteps]).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import SnnhwError
from .network.format import Network, atomic_write

__all__ = ["Result", "load_inputs", "check_inputs"]


@dataclass(eq=False)
class Result:
    """What a run computed for a batch of samples."""

    spikes: dict[str, np.ndarray]  #: per layer, uint8 [samples, timesteps, size]
    v_final: dict[str, np.ndarray]  #: per layer, int64 [samples, size]
    #: per layer, int64 [samples, timesteps, size]: V after the update (and reset) of each step
    v_trace: dict[str, np.ndarray] = field(default_factory=dict)
    cycles: np.ndarray | None = None  #: int64 [samples, timesteps], RTL only

    @property
    def counts(self) -> np.ndarray:
        """Output-layer spike counts, int64 [samples, outputs]."""
        last = list(self.spikes.values())[-1]
        return last.sum(axis=1, dtype=np.int64)

    @property
    def pred(self) -> np.ndarray:
        """Predicted class: argmax of the counts, ties to the lowest index."""
        return np.argmax(self.counts, axis=1)

    def to_npz(self) -> dict[str, np.ndarray]:
        arrays = {f"spikes/{name}": s for name, s in self.spikes.items()}
        arrays.update({f"v_final/{name}": v for name, v in self.v_final.items()})
        arrays.update({f"v_trace/{name}": v for name, v in self.v_trace.items()})
        arrays["counts"] = self.counts
        arrays["pred"] = self.pred
        if self.cycles is not None:
            arrays["cycles"] = self.cycles
        return arrays

    def save(self, path: str | os.PathLike) -> None:
        """Write the result file in one step (no half-written file on failure)."""
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **self.to_npz())
        try:
            atomic_write(Path(path), buffer.getvalue())
        except OSError as error:
            raise SnnhwError(f"{path}: cannot write: {error.strerror or error}") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Result":
        with np.load(path, allow_pickle=False) as npz:
            spikes = {k[len("spikes/"):]: npz[k] for k in npz.files if k.startswith("spikes/")}
            v_final = {k[len("v_final/"):]: npz[k] for k in npz.files if k.startswith("v_final/")}
            v_trace = {k[len("v_trace/"):]: npz[k] for k in npz.files if k.startswith("v_trace/")}
            cycles = npz["cycles"] if "cycles" in npz.files else None
        return cls(spikes=spikes, v_final=v_final, v_trace=v_trace, cycles=cycles)


def check_inputs(net: Network, inputs: np.ndarray, source: str = "inputs") -> np.ndarray:
    """Return ``inputs`` as uint8 [samples, timesteps, input_size] or raise naming ``source``."""
    inputs = np.asarray(inputs)
    if inputs.dtype.kind not in "iub":
        raise SnnhwError(f"{source}: expected an integer 0/1 spike array, got dtype {inputs.dtype}")
    if inputs.ndim != 3 or inputs.shape[2] != net.input_size or 0 in inputs.shape[:2]:
        raise SnnhwError(f"{source}: expected shape [samples, timesteps, {net.input_size}] "
                         f"(input_size of {net.name}), got {tuple(inputs.shape)}")
    if inputs.size and (inputs.min() < 0 or inputs.max() > 1):
        raise SnnhwError(f"{source}: expected only 0 and 1 (spike or none), "
                         f"found values in {int(inputs.min())}..{int(inputs.max())}")
    return inputs.astype(np.uint8, copy=False)


def load_inputs(net: Network, path: str | os.PathLike) -> np.ndarray:
    """Load and check a ``.npy`` spike input file."""
    try:
        inputs = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise SnnhwError(f"{path}: cannot read as a .npy array ({error})") from None
    return check_inputs(net, inputs, str(path))
