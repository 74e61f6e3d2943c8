"""DeMo-Pose: frozen detector features sampled at point pixels, fusion, MPL in training only, data plumbing."""

import numpy as np
import pytest
import torch

from demopose.data.instances import InstanceDataset, collate_instances
from demopose.data.nocs import NOCSDataset
from demopose.engine.checkpoint import CONFIG_VERSION, load_model, save_checkpoint
from demopose.layers.feature_sampling import sample_feature_map
from demopose.models import build_model
from demopose.models.mono import frame_to_input_pixels

TINY_MONO = {"input_size": (64, 64)}


def _model(**kw):
    torch.manual_seed(0)
    return build_model("demopose_small", mono_args=TINY_MONO, mesh_points=32, **kw)


def _batch(model, B=3, N=64, F=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    W, H = tuple(model.mono.config.input_size)
    return {"points": torch.randn(B, N, 3, generator=g) * 0.05 + torch.tensor([0.0, 0.0, 0.7]),
            "class_ids": torch.tensor([1, 2, 6][:B]),
            "image": torch.randn(F, 3, H, W, generator=g),
            "image_index": torch.tensor([0, 1, 0][:B]),
            "image_pixels": torch.rand(B, N, 2, generator=g) * (W - 1)}


def test_detector_frozen_and_mpl_head_training_only():
    m = _model()
    assert all(not p.requires_grad for p in m.mono.parameters())
    m.train()
    assert not m.mono.training, "the frozen detector keeps its BN statistics in training"
    assert m.pose.fusion is not None and m.pose.config.rgb_channels == m.mono.config.neck_channels
    b = _batch(m)
    out = m(b)
    assert out.outputs["mesh_points"].shape == (3, 32, 3)
    calls = []
    m.pose.mesh_head.register_forward_hook(lambda *a: calls.append(1))
    m.eval()
    with torch.no_grad():
        out = m(b)
    assert "mesh_points" not in out.outputs and out.R.shape == (3, 3, 3)
    assert not calls, "the Mesh-Point head must not run at inference"


def test_training_step_leaves_detector_unchanged_and_uses_mpl():
    m = _model()
    m.train()
    before = {k: v.clone() for k, v in m.mono.state_dict().items()}
    b = _batch(m)
    b.update(R=torch.eye(3).expand(3, 3, 3).clone(), t=torch.tensor([[0.0, 0.0, 0.7]] * 3),
             size=torch.full((3, 3), 0.1), size_residual=torch.zeros(3, 3), mean_size=torch.full((3, 3), 0.1),
             y_symmetric=torch.tensor([True, True, False]), handle_visible=torch.ones(3, dtype=torch.bool),
             model_points=torch.randn(3, 32, 3) * 0.05)
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)
    losses = m.loss(m(b), b)
    assert "mpl" in losses and torch.isfinite(losses["mpl"])
    sum(losses.values()).backward()
    opt.step()
    for k, v in m.mono.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_point_features_read_the_detector_map_at_the_pixels():
    m = _model()
    b = _batch(m)
    with torch.no_grad():  # the frozen detector's inference maps (BatchNorm folded), as point_features reads them
        feats = m.mono.inference_feature_map(b["image"])[0]
    torch.testing.assert_close(feats, m.mono.feature_map(b["image"])[0], rtol=1e-4, atol=1e-5)
    got = m.point_features(b["image"], b["image_pixels"], b["image_index"])
    want = sample_feature_map(feats[b["image_index"]], b["image_pixels"], (64, 64))
    assert torch.allclose(got, want)
    # at the centre of stride-8 cell (j, i) the sample is exactly that cell: u = (j + 0.5) * 8 - 0.5
    px = torch.tensor([[[(2 + 0.5) * 8 - 0.5, (5 + 0.5) * 8 - 0.5]]])
    one = m.point_features(b["image"][:1], px)
    assert torch.allclose(one[0, 0], feats[0, :, 5, 2], atol=1e-6)


def test_no_fusion_is_gpv_plus_mpl_without_images():
    m = _model(fusion=None)
    assert m.image_size is None and m.pose.fusion is None
    b = _batch(m)
    b.pop("image")
    m.eval()
    with torch.no_grad():
        assert m(b).R.shape == (3, 3, 3)


def test_missing_image_is_a_clear_error():
    m = _model()
    b = _batch(m)
    b.pop("image")
    with pytest.raises(KeyError, match="image"):
        m(b)


def test_collate_stores_each_frame_once():
    s = [{"points": np.zeros((4, 3), np.float32), "image": np.full((3, 2, 2), f, np.float32),
          "frame_index": np.int64(f)} for f in (5, 7, 5, 9)]
    b = collate_instances(s)
    assert b["image"].shape == (3, 3, 2, 2)
    assert b["image_index"].tolist() == [0, 1, 0, 2]
    assert torch.equal(b["image"][b["image_index"]][:, 0, 0, 0], torch.tensor([5.0, 7.0, 5.0, 9.0]))


def test_instance_dataset_image_pixels_and_mesh_points(tiny_synth):
    from demopose.data.mesh_points import MeshPointSource

    root = tiny_synth(3, 1)
    frames = NOCSDataset(root, "real_train", load_nocs=False)
    ds = InstanceDataset(frames, n_points=64, train=False, image_size=(64, 48),
                         model_points=MeshPointSource(64, cache_dir=root / "cache"))
    s = ds[0]
    fi, _ = ds.index[0]
    f = frames[fi]
    want = frame_to_input_pixels(torch.from_numpy(s["pixels"]).double(), (f.width, f.height), (64, 48))
    assert np.allclose(s["image_pixels"], want.numpy(), atol=1e-4)
    assert s["image"].shape == (3, 48, 64) and int(s["frame_index"]) == fi
    assert s["model_points"].shape == (64, 3)
    batch = collate_instances([ds[i] for i in range(min(4, len(ds)))])
    assert batch["image"].shape[0] <= batch["points"].shape[0]


def test_load_model_round_trip(tmp_path):
    m = _model()
    path = tmp_path / "m.pt"
    cfg = {"model": {"name": "demopose_small", "args": {"mono_args": {"input_size": [64, 64]}, "mesh_points": 32,
                                                        "mono_checkpoint": "/nonexistent/mono.pt"}}}
    save_checkpoint(path, {"model": m.state_dict(), "config": cfg, "step": 1, "config_version": CONFIG_VERSION})
    m2 = load_model(path)  # mono_checkpoint is dropped: the weights are in the checkpoint
    m.eval()
    b = _batch(m)
    with torch.no_grad():
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        assert torch.allclose(m(b, generator=g1).R, m2(b, generator=g2).R, atol=1e-6)


def test_mono_checkpoint_missing_is_named():
    with pytest.raises(FileNotFoundError, match="mono_checkpoint"):
        build_model("demopose_small", mono_args=TINY_MONO, mono_checkpoint="/nonexistent/mono.pt")


@pytest.mark.parametrize("fusion", ["concat", "add", "hadamard", "mlp", "attention"])
def test_warm_start_from_gpv_reproduces_it_exactly(tmp_path, fusion):
    """Every fusion starts as GPV-Pose: concatenation through zero RGB columns, the others because they are
    initialised as the identity on the geometric features (models/fusion.py); so the warm-started DeMo-Pose
    predicts exactly what the GPV-Pose did, whatever the RGB features."""
    from demopose.engine.warm_start import warm_start

    torch.manual_seed(1)
    g = build_model("gpv_small")
    path = tmp_path / "gpv.pt"
    save_checkpoint(path, {"model": g.state_dict(), "config": {}, "step": 0})
    m = _model(fusion=fusion)
    report = warm_start(m, path)
    assert len(report["widened"]) == (4 if fusion == "concat" else 0)
    assert not any(k.startswith("pose.backbone") for k in report["skipped"])
    g.eval()
    m.eval()
    b = _batch(m)
    with torch.no_grad():
        a = g(b, generator=torch.Generator().manual_seed(2))
        c = m(b, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(a.R, c.R, atol=1e-6) and torch.allclose(a.t, c.t, atol=1e-6)
