"""Lookahead takes its slow weights at the first step, so weights loaded after building it are kept."""

import torch

from demopose.engine.optim import build_optimizer


def test_weights_loaded_after_building_the_optimiser_survive_the_sync():
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 3)
    opt = build_optimizer("ranger", lin.parameters(), lr=0.0)
    loaded = {k: torch.randn_like(v) for k, v in lin.state_dict().items()}
    lin.load_state_dict(loaded)  # e.g. a warm start after build_optim
    for _ in range(6):  # k = 6: one slow-weight sync
        lin.weight.grad = torch.ones_like(lin.weight)
        lin.bias.grad = torch.ones_like(lin.bias)
        opt.step()
    assert torch.allclose(lin.weight, loaded["weight"]) and torch.allclose(lin.bias, loaded["bias"])
    state = opt.state_dict()
    assert torch.allclose(state["slow"][0][0], loaded["weight"])
