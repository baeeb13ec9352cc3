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

from .config import shown
from .errors import SnnhwError
from .network.format import Network, atomic_write, npy_header

__all__ = ["Result", "load_inputs", "load_features", "check_inputs"]


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
    def concat(cls, parts: "list[Result]") -> "Result":
        """The results of consecutive batches as one, samples in order."""
        def join(name: str) -> dict[str, np.ndarray]:
            return {key: np.concatenate([getattr(part, name)[key] for part in parts])
                    for key in getattr(parts[0], name)}
        cycles = (None if parts[0].cycles is None
                  else np.concatenate([part.cycles for part in parts]))
        return cls(spikes=join("spikes"), v_final=join("v_final"), v_trace=join("v_trace"),
                   cycles=cycles)

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
    _check_layout(net, inputs.shape, inputs.dtype, source)
    if inputs.size and (inputs.min() < 0 or inputs.max() > 1):
        raise SnnhwError(f"{source}: expected only 0 and 1 (spike or none), "
                         f"found values in {int(inputs.min())}..{int(inputs.max())}")
    return inputs.astype(np.uint8, copy=False)


def _check_layout(net: Network, shape: tuple[int, ...], dtype: np.dtype, source: str) -> None:
    if dtype.kind not in "iub":
        raise SnnhwError(f"{source}: expected an integer 0/1 spike array, got dtype {dtype}")
    if len(shape) != 3 or shape[2] != net.input_size or 0 in shape[:2]:
        raise SnnhwError(f"{source}: expected shape [samples, timesteps, {net.input_size}] "
                         f"(input_size of {net.name}), got {shown(tuple(shape))}")


def load_inputs(net: Network, path: str | os.PathLike) -> np.ndarray:
    """Load and check a ``.npy`` spike input file.

    The header is checked first (a ``.npy`` file of integers in the shape ``net`` takes, of a sane
    size), so that a file declaring terabytes is refused before numpy tries to allocate them.
    """
    inputs = _load_npy(path, lambda shape, dtype: _check_layout(net, shape, dtype, str(path)))
    return check_inputs(net, inputs, str(path))


def load_features(net: Network, path: str | os.PathLike) -> np.ndarray:
    """Load and check a ``.npy`` file of feature bytes for the network's on-chip encoder: integers
    0..255 [samples, input_size], one row a sample; returned as uint8."""
    from .network.encoder import check_features

    def check(shape, dtype):
        if len(shape) != 2 or shape[1:] != (net.input_size,) or not shape[0]:
            raise SnnhwError(f"{path}: expected shape [samples, {net.input_size}] (feature bytes "
                             f"of {net.name}'s inputs, one row a sample), got {shown(shape)}")

    features = _load_npy(path, check)
    try:
        return check_features(features, net.input_size, str(path))
    except ValueError as error:
        raise SnnhwError(str(error)) from None


def _load_npy(path: str | os.PathLike, check_header) -> np.ndarray:
    """An array from a ``.npy`` file; ``check_header(shape, dtype)`` raises before it is read."""
    try:
        with open(path, "rb") as file:
            shape, dtype = npy_header(file, str(path))
            check_header(tuple(shape), dtype)
            file.seek(0)
            try:
                inputs = np.load(file, allow_pickle=False)
            except (ValueError, EOFError):
                raise SnnhwError(f"{path}: not a readable .npy array (its data is shorter than "
                                 f"its header's shape {shown(tuple(shape))} needs)") from None
    except IsADirectoryError:
        raise SnnhwError(f"{path}: cannot read: it is a directory, expected a .npy file") from None
    except OSError as error:
        raise SnnhwError(f"{path}: cannot read: {error.strerror or error}") from None
    return inputs
