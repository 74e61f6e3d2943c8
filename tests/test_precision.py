"""train.precision: resolution of 'auto', and a bf16 autocast training step whose geometry stays float32."""

import pytest
import torch

from demopose.engine import precision as P
from demopose.engine.trainer import TrainerConfig, float32_outputs
from demopose.models import build_model


def test_resolve_precision(monkeypatch):
    monkeypatch.setattr(P, "cpu_has_amx", lambda: True)
    assert P.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(P, "cpu_has_amx", lambda: False)
    assert P.resolve_precision("auto", "cpu") == "fp32"
    assert P.resolve_precision("BF16") == "bf16" and P.resolve_precision("fp32") == "fp32"
    with pytest.raises(ValueError, match="train.precision"):
        P.resolve_precision("fp16")
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        TrainerConfig(max_steps=1, batch_size=2, precision="auto")


@pytest.mark.parametrize("name", ["gpv_small", "cleanpose_small"])
def test_bf16_training_step_keeps_geometry_float32(name):
    torch.manual_seed(0)
    model = build_model(name, **({"distill": {"teacher": "tiny"}} if name.startswith("cleanpose") else {})).train()
    B, N = 4, 256
    R = torch.linalg.qr(torch.randn(B, 3, 3))[0]
    R = R * torch.linalg.det(R).sign().view(B, 1, 1)
    batch = {"points": torch.randn(B, N, 3) * 0.05 + torch.tensor([0.0, 0.0, 0.8]),
             "class_ids": torch.tensor([1, 2, 5, 6]), "R": R, "t": torch.tensor([[0.0, 0.0, 0.8]]).repeat(B, 1),
             "size": torch.full((B, 3), 0.1), "mean_size": torch.full((B, 3), 0.1),
             "y_symmetric": torch.tensor([True, True, False, False]),
             "handle_visible": torch.ones(B, dtype=torch.bool)}
    batch["size_residual"] = batch["size"] - batch["mean_size"]
    with P.autocast("bf16"):
        pred = model(batch)
    assert pred.R.dtype == torch.float32 and pred.t.dtype == torch.float32  # rotations never in bf16
    losses = model.loss(float32_outputs(pred), batch)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp32 master weights
