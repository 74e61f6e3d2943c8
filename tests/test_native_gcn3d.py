"""The compiled 3D-GC kernel (demopose.native) against the torch path it replaces at inference."""

from __future__ import annotations

import warnings

import pytest
import torch

import demopose.native._build as build
from demopose.layers import GraphConv, SurfaceConv, knn_indices
from demopose.models.gpv import GPVConfig, GPVPose
from demopose.native import gcn3d as native_gcn3d

needs_kernel = pytest.mark.skipif(not native_gcn3d.available(), reason="no C compiler: the torch path runs instead")


def _torch_path(monkeypatch, fn):
    with monkeypatch.context() as m:
        m.setattr(native_gcn3d, "usable", lambda *t: False)
        return fn()


def _spy(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = native_gcn3d.aggregate

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(native_gcn3d, "aggregate", counted)
    return calls


@needs_kernel
@pytest.mark.parametrize("aggregate", ["sum", "mean"])
@pytest.mark.parametrize("channels", [16, 37])  # a whole number of vector lanes, and a scalar tail
def test_kernel_matches_torch_path(monkeypatch, aggregate, channels):
    torch.manual_seed(3)
    conv = GraphConv(12, channels, support_num=7, aggregate=aggregate).eval()
    surf = SurfaceConv(channels, support_num=7, aggregate=aggregate).eval()
    v = torch.randn(3, 150, 3)
    v[1, 7] = v[1, 8]  # a duplicate point: zero direction
    f = torch.randn(3, 150, 12)
    idx = knn_indices(v, k=10, exclude_self=True)
    with torch.no_grad():
        ref_conv = _torch_path(monkeypatch, lambda: conv(v, f, idx))
        ref_surf = _torch_path(monkeypatch, lambda: surf(v, idx))
        calls = _spy(monkeypatch)
        out_conv, out_surf = conv(v, f, idx), surf(v, idx)
    assert len(calls) == 2
    assert out_conv.shape == ref_conv.shape == (3, 150, channels)
    torch.testing.assert_close(out_conv, ref_conv, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out_surf, ref_surf, rtol=1e-5, atol=1e-6)


@needs_kernel
def test_kernel_known_answer():
    """Supports +x and +y, neighbours at +x (2 away), +y (0.5) and -z: each support's best similarity is 1."""
    conv = SurfaceConv(kernel_num=1, support_num=2)
    with torch.no_grad():
        conv.directions.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        v = torch.tensor([[[0.0, 0, 0], [2.0, 0, 0], [0.0, 0.5, 0], [0.0, 0, -1]]])
        idx = torch.tensor([[[1, 2, 3]]]).expand(1, 4, 3).contiguous()
        assert native_gcn3d.usable(v)
        assert conv(v, idx)[0, 0, 0].item() == pytest.approx(2.0)
        conv.aggregate = "mean"
        assert conv(v, idx)[0, 0, 0].item() == pytest.approx(1.0)


@needs_kernel
def test_thread_count_does_not_change_results():
    torch.manual_seed(4)
    conv = GraphConv(8, 32).eval()
    v, f = torch.randn(2, 300, 3), torch.randn(2, 300, 8)
    idx = knn_indices(v, k=10, exclude_self=True)
    threads = torch.get_num_threads()
    try:
        with torch.no_grad():
            torch.set_num_threads(1)
            one = conv(v, f, idx)
            torch.set_num_threads(3)
            three = conv(v, f, idx)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, three)


@needs_kernel
def test_training_and_float64_use_the_torch_path(monkeypatch):
    calls = _spy(monkeypatch)
    conv = GraphConv(4, 8)
    v, f = torch.randn(1, 20, 3), torch.randn(1, 20, 4)
    idx = knn_indices(v, k=4, exclude_self=True)
    conv(v, f, idx).sum().backward()  # gradients are recorded: torch path
    assert conv.weight.grad is not None
    with torch.no_grad():
        conv.double()(v.double(), f.double(), idx)
    assert calls == []


@needs_kernel
def test_gpv_model_same_poses_with_and_without_kernel(monkeypatch):
    torch.manual_seed(0)
    model = GPVPose(GPVConfig(widths=(16, 16, 32, 32, 64), head_point_channels=(64, 32), head_fc_channels=32)).eval()
    batch = {"points": torch.randn(2, 256, 3) * 0.1, "class_ids": torch.tensor([1, 4])}
    with torch.no_grad():
        ref = _torch_path(monkeypatch, lambda: model(batch, generator=torch.Generator().manual_seed(5)))
        calls = _spy(monkeypatch)
        out = model(batch, generator=torch.Generator().manual_seed(5))
    assert calls
    torch.testing.assert_close(out.R, ref.R, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.t, ref.t, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.size, ref.size, rtol=1e-4, atol=1e-5)


@needs_kernel
def test_aggregate_rejects_bad_input():
    u, d = torch.nn.functional.normalize(torch.randn(5, 4, 3), dim=-1), torch.randn(3, 14)
    g, idx = torch.randn(5, 14), torch.randint(0, 5, (5, 4))
    with pytest.raises(ValueError, match=r"index: values must lie in \[0, 5\)"):
        native_gcn3d.aggregate(u, d, 7, g, idx + 5)
    with pytest.raises(ValueError, match="int64"):
        native_gcn3d.aggregate(u, d, 7, g, idx.int())
    with pytest.raises(ValueError, match="S = 4"):
        native_gcn3d.aggregate(u, d, 4)
    with pytest.raises(ValueError, match="center"):
        native_gcn3d.aggregate(u, d, 7, g, idx, center=torch.zeros(5, 3))


def test_build_is_cached_and_failures_are_reported(tmp_path, monkeypatch):
    if build._compiler() is None:
        pytest.skip("no C compiler")
    lib = build.build_library("gcn3d", folder=tmp_path)
    stamp = lib.stat().st_mtime_ns
    assert build.build_library("gcn3d", folder=tmp_path) == lib and lib.stat().st_mtime_ns == stamp
    with pytest.raises(RuntimeError, match="exit 1"):
        build.build_library("gcn3d", compiler="false", folder=tmp_path / "other")
    assert not list((tmp_path / "other").glob("*"))  # no partial file left behind


def test_cached_build_is_readable_by_others_and_a_broken_one_is_rebuilt(tmp_path, monkeypatch):
    if build._compiler() is None:
        pytest.skip("no C compiler")
    monkeypatch.setenv("DEMOPOSE_CACHE", str(tmp_path))
    lib = build.build_library("gcn3d")
    assert lib.parent == tmp_path / "native" and lib.stat().st_mode & 0o044 == 0o044
    lib.write_bytes(b"not a shared library")  # damaged (or unreadable) cached file
    monkeypatch.setattr(build, "_loaded", {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build.load_library("gcn3d") is not None  # rebuilt into a private folder


def test_unavailable_kernel_warns_once_and_falls_back(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "_loaded", {})
    monkeypatch.setenv("DEMOPOSE_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "false")
    with pytest.warns(RuntimeWarning, match="DEMOPOSE_NATIVE=0"):
        assert build.load_library("gcn3d") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build.load_library("gcn3d") is None  # remembered: no second warning
    monkeypatch.setattr(build, "_loaded", {})
    monkeypatch.setenv("DEMOPOSE_NATIVE", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build.load_library("gcn3d") is None
