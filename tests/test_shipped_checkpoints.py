"""Every shipped checkpoint loads through ``load_model`` (its stored config upgraded to the current config
version) and gives the predictions it gave when it was shipped.

The reference outputs live in ``fixtures/shipped_predictions.pt``; they were recorded with the code of the
commit that added this test and must not move: a change of a model's default architecture has to leave the
checkpoints trained with the old one loading as the old one (``engine.checkpoint.upgrade_config``). After a
deliberate change (a retrained checkpoint), record them again::

    python tests/test_shipped_checkpoints.py --record
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "checkpoints").rglob("*.pt")) + sorted((REPO / "src/demopose/assets").glob("*.pt"))
REFERENCE = Path(__file__).resolve().parent / "fixtures" / "shipped_predictions.pt"


def _model_checkpoints() -> list[Path]:
    from demopose.engine.checkpoint import load_checkpoint

    out = []
    for p in SHIPPED:
        try:
            state = load_checkpoint(p)
        except ValueError:  # not a model checkpoint (the distillation teacher has its own format)
            continue
        if ((state.get("config") or {}).get("model") or {}).get("name"):
            out.append(p)
    return out


def _key(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _inputs(model: torch.nn.Module, n_points: int = 256, B: int = 4) -> dict[str, torch.Tensor]:
    """A fixed batch: points on the faces of boxes 0.6 m in front of the camera (metres, camera frame), NOCS
    classes, and the images / crops / pixels the model reads (uniform noise, fixed seed)."""
    from demopose.geometry.rotation import random_rotation

    g = torch.Generator().manual_seed(123)
    size = 0.06 + 0.1 * torch.rand(B, 3, generator=g)
    R = random_rotation(B, generator=g).float()
    t = torch.tensor([0.0, 0.0, 0.6]) + 0.05 * torch.randn(B, 3, generator=g)
    u = torch.rand(B, n_points, 3, generator=g) - 0.5
    axis = torch.randint(0, 3, (B, n_points), generator=g)
    u.scatter_(2, axis[..., None], torch.sign(torch.rand(B, n_points, 1, generator=g) - 0.5) * 0.5)
    batch = {"points": (u * size[:, None]) @ R.transpose(1, 2) + t[:, None],
             "class_ids": torch.tensor([1, 3, 5, 6])[:B]}
    rgb = getattr(model, "rgb_size", None)
    if rgb:
        batch["rgb"] = torch.rand(B, 3, rgb, rgb, generator=g)
        batch["rgb_pixels"] = torch.rand(B, n_points, 2, generator=g) * (rgb - 1)
    image = getattr(model, "image_size", None)
    if image:
        W, H = image
        batch["image"] = torch.randn(B, 3, H, W, generator=g)
        batch["image_pixels"] = torch.rand(B, n_points, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])
        batch["image_index"] = torch.arange(B)
    return batch


@torch.no_grad()
def _outputs(path: Path) -> dict[str, torch.Tensor]:
    """What the checkpoint's model computes on :func:`_inputs`: the pose (``R``, ``t``, ``size``) of a pose
    model; a subsampled stride-8 feature map of a detector."""
    from demopose.engine.checkpoint import load_model

    torch.manual_seed(0)
    model = load_model(path).eval()
    if hasattr(model, "feature_map") and not hasattr(model, "pose"):  # the monocular detector
        W, H = model.config.input_size
        image = torch.randn(1, 3, H, W, generator=torch.Generator().manual_seed(7))
        return {"level0": model.feature_map(image)[0][..., ::8, ::8].contiguous()}
    pred = model(_inputs(model))
    return {"R": pred.R, "t": pred.t, "size": pred.size}


@pytest.mark.parametrize("path", _model_checkpoints(), ids=_key)
def test_shipped_checkpoint_predicts_as_shipped(path):
    ref = torch.load(REFERENCE, map_location="cpu", weights_only=True)
    assert _key(path) in ref, f"no reference outputs for {_key(path)}: record them (module docstring)"
    out = _outputs(path)
    assert set(out) == set(ref[_key(path)])
    for k, v in out.items():
        torch.testing.assert_close(v, ref[_key(path)][k], atol=2e-5, rtol=1e-4, msg=f"{_key(path)}: {k}")


def test_every_shipped_model_checkpoint_has_a_reference():
    ref = torch.load(REFERENCE, map_location="cpu", weights_only=True)
    assert {_key(p) for p in _model_checkpoints()} == set(ref)


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit(__doc__)
    torch.save({_key(p): _outputs(p) for p in _model_checkpoints()}, REFERENCE)
    print(f"wrote {REFERENCE}")
