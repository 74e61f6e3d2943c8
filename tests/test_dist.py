"""The engine's distributed pieces in two gloo processes: evaluator states merged across ranks, SyncBatchNorm on
CPU (same statistics and gradients as BatchNorm over the concatenated batch), front-door dictionaries that stay
identical on every rank and hold every rank's features, and the broadcast best-checkpoint values."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp

from demopose.engine import dist


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(r: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=r, world_size=2)
    try:
        res = {}
        # SyncBatchNorm: each rank holds half of one batch
        torch.manual_seed(0)
        x = torch.randn(6, 3, 5) * 2 + 1
        w = torch.randn(6, 3, 5)
        bn = dist.convert_sync_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm1d(3)))
        assert isinstance(bn[0], dist.SyncBatchNorm)
        mine = x[3 * r: 3 * r + 3].clone().requires_grad_(True)
        y = bn(mine)
        (y * w[3 * r: 3 * r + 3]).sum().backward()
        res["bn_y"], res["bn_grad"] = y.detach(), mine.grad
        res["bn_w_grad"] = bn[0].weight.grad.clone()
        res["bn_state"] = {k: v.clone() for k, v in bn.state_dict().items()}
        # front-door dictionary: different features on each rank
        from demopose.models.causal import ConfounderDictionary

        d = ConfounderDictionary(num_classes=2, size=4, dim=2)
        assert dist.share_dictionary_updates(torch.nn.Sequential(d)) == 1
        feats = torch.full((2, 2), float(r + 1))
        d.enqueue(feats, torch.tensor([0, r]))
        res["bank"], res["count"] = d.bank.clone(), d.count.clone()
        # rows of different lengths, and a broadcast object
        res["rows"] = dist.all_gather_rows(torch.arange(r + 1))
        res["bcast"] = dist.broadcast_object({"v": r})
        torch.save(res, f"{out}/rank{r}.pt")
    finally:
        tdist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


def test_sync_batchnorm_equals_batchnorm_on_the_whole_batch(two_ranks):
    torch.manual_seed(0)
    x = (torch.randn(6, 3, 5) * 2 + 1).requires_grad_(True)
    w = torch.randn(6, 3, 5)
    bn = torch.nn.Sequential(torch.nn.BatchNorm1d(3))
    y = bn(x)
    (y * w).sum().backward()
    got_y = torch.cat([two_ranks[0]["bn_y"], two_ranks[1]["bn_y"]])
    got_g = torch.cat([two_ranks[0]["bn_grad"], two_ranks[1]["bn_grad"]])
    torch.testing.assert_close(got_y, y.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_g, x.grad, atol=1e-5, rtol=1e-5)
    # the weight gradient of each rank is its own share; DDP sums (averages) them
    torch.testing.assert_close(two_ranks[0]["bn_w_grad"] + two_ranks[1]["bn_w_grad"], bn[0].weight.grad, atol=1e-5,
                               rtol=1e-5)
    for k, v in bn.state_dict().items():  # same keys, same running statistics on both ranks
        for r in range(2):
            torch.testing.assert_close(two_ranks[r]["bn_state"][k], v, atol=1e-5, rtol=1e-5)


def test_dictionaries_identical_and_hold_every_rank(two_ranks):
    a, b = two_ranks
    assert torch.equal(a["bank"], b["bank"]) and torch.equal(a["count"], b["count"])
    assert a["count"].tolist() == [3, 1]  # class 0: one feature from each rank + rank 0's second; class 1: rank 1's
    assert a["bank"][0, :3, 0].tolist() == [1.0, 1.0, 2.0]  # rank order


def test_rows_and_broadcast(two_ranks):
    for res in two_ranks:
        assert res["rows"].tolist() == [0, 0, 1]
        assert res["bcast"] == {"v": 0}


def test_evaluator_states_merge_like_one_evaluator():
    from demopose.categories import NOCS_REAL
    from demopose.evaluation import NOCSEvaluator
    from demopose.geometry import PoseSet

    rng = np.random.default_rng(0)

    def frame():
        n = 3
        cls = rng.integers(1, 7, n)
        R = np.stack([np.linalg.qr(rng.normal(size=(3, 3)))[0] for _ in range(n)])
        R *= np.linalg.det(R)[:, None, None]
        t, s = rng.normal(size=(n, 3)) * 0.1 + [0, 0, 1], rng.uniform(0.05, 0.2, (n, 3))
        gt = PoseSet(cls, R, t, s, np.ones(n), handle_visible=np.ones(n, bool))
        pred = PoseSet(cls, R, t + rng.normal(size=(n, 3)) * 0.01, s * 1.05, rng.uniform(0.3, 1, n))
        return pred, gt

    frames = [frame() for _ in range(5)]
    whole = NOCSEvaluator(NOCS_REAL, iou_mode="both")
    parts = [NOCSEvaluator(NOCS_REAL, iou_mode="both") for _ in range(2)]
    for i, (p, g) in enumerate(frames):
        whole.process(p, g)
        parts[i % 2].process(p, g)
    want = whole.evaluate()
    merged = NOCSEvaluator(NOCS_REAL, iou_mode="both")
    merged.load_state(*(e.state() for e in parts))
    assert merged.evaluate() == want
    assert parts[0].evaluate() != want  # alone, a part scores only its own frames
    with pytest.raises(ValueError, match="cannot join"):
        NOCSEvaluator(NOCS_REAL, iou_mode="nocs").load_state(parts[0].state())
