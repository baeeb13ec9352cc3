"""Distillation in the compression stages' fine-tuning: the loss pulls the student's output spike
counts towards the float teacher's, and a recipe turns it on per stage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnhw.train.fit import _counts, distill_loss, fit, loss_fn
from snnhw.train.model import SNN
from snnhw.train.pipeline import apply_stages, prepare
from snnhw.train.recipe import Distill, parse_recipe


def test_distill_loss_blends_cross_entropy_and_the_teachers_soft_targets():
    torch.manual_seed(0)
    counts, teacher = torch.rand(8, 10) * 16, torch.rand(8, 10) * 16
    labels = torch.randint(0, 10, (8,))
    # weight 0 is plain cross-entropy; weight 1 ignores the labels
    assert torch.equal(distill_loss(counts, labels, teacher, Distill(0.0, 3.0)),
                       loss_fn(counts, labels))
    other = (labels + 1) % 10
    pure = Distill(1.0, 2.0)
    assert torch.equal(distill_loss(counts, labels, teacher, pure),
                       distill_loss(counts, other, teacher, pure))
    # the soft term is zero at the teacher, positive elsewhere, and its gradient points there
    assert distill_loss(teacher, labels, teacher, pure).item() == pytest.approx(0.0, abs=1e-6)
    student = counts.clone().requires_grad_()
    loss = distill_loss(student, labels, teacher, pure)
    loss.backward()
    assert loss.item() > 0.1
    stepped = (student - 10.0 * student.grad).detach()
    assert distill_loss(stepped, labels, teacher, pure) < loss


def _kl(student: SNN, teacher: SNN, x: torch.Tensor) -> float:
    return distill_loss(_counts(student, x, 64), torch.zeros(len(x), dtype=torch.int64),
                        _counts(teacher, x, 64), Distill(1.0, 2.0)).item()


def test_fit_with_distillation_moves_the_student_towards_the_teacher():
    """Trained on labels that disagree with the teacher, the student ends closer to the teacher
    with the distillation term than without it (and closer than it started)."""
    rng = np.random.default_rng(0)
    spikes = (rng.random((256, 4, 16)) < 0.3).astype(np.uint8)
    torch.manual_seed(1)
    teacher = SNN([16, 12, 4], min_threshold=16)
    torch.manual_seed(2)
    start = SNN([16, 12, 4], min_threshold=16)
    labels = rng.integers(0, 4, len(spikes))
    x = torch.from_numpy(spikes.astype(np.float32))
    before = _kl(start, teacher, x)
    kls = {}
    for name, distill in (("ce", None), ("distill", Distill(0.9, 2.0))):
        student = SNN([16, 12, 4], min_threshold=16)
        student.load_state_dict(start.state_dict())
        fit(student, lambda epoch: spikes, labels, epochs=8, batch_size=32, lr=0.01, seed=0,
            teacher=teacher, distill=distill)
        kls[name] = _kl(student, teacher, x)
    assert kls["distill"] < 0.5 * before and kls["distill"] < 0.5 * kls["ce"]


def test_stages_distill_from_the_float_network_and_repeat_exactly():
    """The teacher is the float network of the same run, untouched by the stages; a distilling
    stage trains a different network than a plain one, the same one when run again."""
    base = {"name": "d", "data": {"timesteps": 4}, "model": {"hidden": [12], "min_threshold": 16},
            "train": {"epochs": 1, "batch_size": 128, "progress": False}}
    recipe = parse_recipe(base)
    stage = {"cluster": {"values": 4, "epochs": 1}}
    ctx = prepare(recipe)
    float_weights = [layer.weight.detach().clone() for layer in ctx.model.layers]
    weights = {}
    for name, settings in (("plain", {}), ("distill", {"distill": {"weight": 0.5}}),
                           ("again", {"distill": {"weight": 0.5}})):
        run = prepare(recipe)
        stages = parse_recipe({**base, "compress": [{"cluster": {**stage["cluster"],
                                                                 **settings}}]}).compress
        apply_stages(run, stages)
        for teacher, original in zip(run.teacher.layers, float_weights):
            assert torch.equal(teacher.weight, original) and teacher.quantizer is None
        weights[name] = [layer.weight.detach().clone() for layer in run.model.layers]
    assert any(not torch.equal(a, b) for a, b in zip(weights["plain"], weights["distill"]))
    for a, b in zip(weights["distill"], weights["again"]):
        assert torch.equal(a, b)
