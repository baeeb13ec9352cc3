"""What several test modules share (importable as ``conftest``: pytest puts tests/ on the path)."""

#: A recipe that trains in seconds: enough to run every flow step, not to be accurate.
TINY_RECIPE = """\
name: tiny
data: {dataset: digits, timesteps: 6}
model: {hidden: [16]}
train: {epochs: 1, progress: false}
compress:
  - prune: {sparsity: 0.5, rounds: 1, epochs: 1}
  - cluster: {values: 4, epochs: 1}
"""
