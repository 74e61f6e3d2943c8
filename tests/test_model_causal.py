"""Front-door causal module: dictionary buffers, update rules, determinism, checkpoint round trip."""

from __future__ import annotations

import io

import pytest
import torch

from demopose.models.causal import ConfounderDictionary, FrontDoorModule, build_dictionary, kmeans


def test_fifo_enqueue_matches_sequential_reference():
    d = ConfounderDictionary(3, 4, 2)
    ref = [[] for _ in range(3)]
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        cls = torch.randint(0, 3, (7,), generator=g)
        f = torch.randn(7, 2, generator=g)
        d.enqueue(f, cls)
        for c, v in zip(cls.tolist(), f):
            ref[c].append(v)
    for c in range(3):
        last = ref[c][-4:]
        assert int(d.count[c]) == min(4, len(ref[c]))
        got = {tuple(v.tolist()) for v in d.bank[c, : int(d.count[c])]}
        assert got == {tuple(v.tolist()) for v in last}


def test_momentum_update_moves_nearest_entry():
    d = ConfounderDictionary(1, 2, 2, update="momentum", momentum=0.5)
    d.fill(torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]))
    d.enqueue(torch.tensor([[3.0, 0.2]]), torch.tensor([0]))
    torch.testing.assert_close(d.bank[0, 0], torch.tensor([2.0, 0.1]))
    torch.testing.assert_close(d.bank[0, 1], torch.tensor([0.0, 1.0]))


def test_lookup_masks_invalid_entries_and_selects_valid_first():
    d = ConfounderDictionary(2, 5, 3)
    d.enqueue(torch.ones(2, 3), torch.tensor([0, 0]))
    e, ignore = d.lookup(torch.tensor([0, 1]))
    assert e.shape == (2, 5, 3)
    assert ignore[0].tolist() == [False, False, True, True, True]
    assert not ignore[1].any()  # empty class: zeros exposed, attention stays finite
    e, ignore = d.lookup(torch.tensor([0]), select=3, generator=torch.Generator().manual_seed(0))
    assert e.shape == (1, 3, 3) and ignore[0].tolist() == [False, False, True]


def test_front_door_eval_is_deterministic_and_checkpoint_restores_dictionary():
    torch.manual_seed(0)
    m = FrontDoorModule(3, dim=16, dict_size=6, select_num=2, ffn=16, self_blocks=1, cross_blocks=1)
    x, cls = torch.randn(5, 4, 16), torch.tensor([0, 1, 2, 0, 1])
    m.train()
    for _ in range(3):
        m(x + torch.randn_like(x), cls)  # training fills the dictionary
    assert m.dictionary.count.tolist() == [6, 6, 3]
    m.eval()
    a, b = m(x, cls), m(x, cls)
    assert torch.equal(a, b)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    assert {"dictionary.bank", "dictionary.ptr", "dictionary.count"} <= set(m.state_dict())
    m2 = FrontDoorModule(3, dim=16, dict_size=6, select_num=2, ffn=16, self_blocks=1, cross_blocks=1).eval()
    buf.seek(0)
    m2.load_state_dict(torch.load(buf))
    assert torch.equal(m2.dictionary.bank, m.dictionary.bank)
    assert torch.equal(m2(x, cls), a)
    # per-instance (B, C) features work too, and eval does not touch the dictionary
    before = m.dictionary.bank.clone()
    assert m(x[:, 0], cls).shape == (5, 16)
    assert torch.equal(before, m.dictionary.bank)


def test_front_door_gradients_and_bad_class():
    m = FrontDoorModule(2, dim=8, dict_size=4, ffn=8, self_blocks=1, cross_blocks=1)
    x = torch.randn(3, 8, requires_grad=True)
    m(x, torch.tensor([0, 1, 1])).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="class_idx"):
        m(x, torch.tensor([0, 1, 2]))


def test_build_dictionary_first_and_kmeans():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    feats = torch.cat([c + 0.1 * torch.randn(20, 2, generator=g) for c in centres])
    cls = torch.zeros(60, dtype=torch.long)
    bank, count = build_dictionary(feats, cls, 2, 3, method="first")
    assert torch.equal(bank[0], feats[:3]) and count.tolist() == [3, 0]
    bank, count = build_dictionary(feats, cls, 2, 3, method="kmeans")
    found = sorted(bank[0].round().tolist())
    assert found == sorted(centres.tolist())
    assert kmeans(feats, 3, generator=g).shape == (3, 2)
