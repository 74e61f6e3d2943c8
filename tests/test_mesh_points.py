"""Mesh-Point Loss targets: NOCS obj_models (sampled + cached) and the generator's precomputed samples."""

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from demopose.data.mesh_points import MeshPointSource, normalise_mesh_vertices
from demopose.data.nocs import NOCSDataset, load_frame

FIX = Path(__file__).parent / "fixtures" / "nocs_sample"


def _observed(frame, j):
    m = (frame.instance_map == frame.instance_ids[j]) & (frame.depth > 0)
    v, u = np.nonzero(m)
    z = frame.depth[v, u]
    K = frame.K
    return np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], -1)


@pytest.mark.parametrize("prefix,names", [("Real/test/scene_1/0000", ("mug_daniel_norm", "can_arizona_tea_norm")),
                                          ("CAMERA/val/00000/0000", None)])
def test_posed_samples_lie_on_the_observed_surface(tmp_path, prefix, names):
    """Known answer: R·M + t of the sampled mesh covers the instance's depth points (CAMERA meshes z-flipped)."""
    frame = load_frame(FIX / prefix)
    src = MeshPointSource(512, cache_dir=tmp_path)
    checked = 0
    for j, name in enumerate(frame.model_names):
        if names is not None and name not in names:
            continue
        pts = src(frame, j)
        if pts is None:
            continue
        assert pts.shape == (512, 3) and pts.dtype == np.float32
        assert np.allclose(pts.max(0) - pts.min(0), frame.poses[j].size, atol=0.01)
        p = frame.poses[j]
        posed = pts @ p.R.T + p.t
        obs = _observed(frame, j)
        d, _ = cKDTree(posed).query(obs)
        assert np.median(d) < 0.02, (name, np.median(d))  # sample spacing + real depth noise
        tilt = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])  # laid on its side: must fit clearly worse
        d_wrong, _ = cKDTree(pts @ (p.R @ tilt).T + p.t).query(obs)
        assert np.median(d_wrong) > 1.5 * np.median(d), name
        checked += 1
    assert checked >= 1
    assert list(tmp_path.rglob("*.npy")), "sampled meshes are cached"


def test_cache_is_reused_and_deterministic(tmp_path):
    frame = load_frame(FIX / "Real/test/scene_1/0000")
    a = MeshPointSource(128, cache_dir=tmp_path, memory=False).normalised(frame, 0)
    b = MeshPointSource(128, cache_dir=tmp_path, memory=False).normalised(frame, 0)
    c = MeshPointSource(128, cache_dir=tmp_path / "other").normalised(frame, 0)
    assert np.array_equal(a, b) and np.array_equal(a, c)
    assert 0.9 < np.linalg.norm(a.max(0) - a.min(0)) <= 1.0 + 1e-6  # normalised frame: diagonal 1


def test_missing_mesh_gives_none(tmp_path):
    frame = load_frame(FIX / "Real/test/scene_1/0000")
    j = frame.model_names.index("laptop_air_xin_norm")  # the fixture has its extents but not its mesh
    assert MeshPointSource(64, cache_dir=tmp_path)(frame, j) is None


def test_generator_samples_are_read_and_checked(tiny_synth, tmp_path):
    root = tiny_synth(3, 1)
    frame = NOCSDataset(root, "real_train", load_nocs=False)[0]
    pts = MeshPointSource(64, cache_dir=tmp_path)(frame, 0)
    npy = root / "obj_models" / "real_train" / f"{frame.model_names[0]}_mpl.npy"
    assert np.allclose(pts, np.load(npy) * frame.poses[0].scale, atol=1e-6)
    assert not list(tmp_path.rglob("*.npy")), "precomputed samples need no cache"
    with pytest.raises(ValueError, match="mesh_points"):
        MeshPointSource(100, cache_dir=tmp_path)(frame, 0)


def test_normalise_vertices():
    v = np.array([[0, 0, 0], [3, 0, 0], [0, 4, 0], [0, 0, 0.0]]) + 5
    n = normalise_mesh_vertices(v)
    assert np.allclose(n.max(0) + n.min(0), 0) and np.isclose(np.linalg.norm(n.max(0) - n.min(0)), 1)
