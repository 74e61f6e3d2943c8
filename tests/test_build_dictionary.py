"""Initial confounder dictionaries: feature collection, the dictionary file, `demopose build-dictionary`,
and the models' dict_init option."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from demopose.cli import main
from demopose.models import build_model
from demopose.models.causal import (
    FrontDoorModule,
    collect_dictionary_features,
    init_dictionary,
    load_dictionary_file,
    save_dictionary_file,
)


class _Wrap(nn.Module):
    def __init__(self, enqueue: str) -> None:
        super().__init__()
        self.fd = FrontDoorModule(3, dim=8, dict_size=4, select_num=2, ffn=8, self_blocks=1, cross_blocks=1,
                                  enqueue=enqueue)

    def forward(self, batch):
        return self.fd(batch["x"], batch["class_ids"] - 1)


@pytest.mark.parametrize("enqueue", ["input", "output"])
def test_collect_records_what_the_update_rule_would_enqueue(enqueue):
    torch.manual_seed(0)
    m = _Wrap(enqueue).train()
    batches = [{"x": torch.randn(5, 6, 8), "class_ids": torch.tensor([1, 2, 3, 1, 2])} for _ in range(2)]
    got = collect_dictionary_features(m, batches)
    assert m.training and int(m.fd.dictionary.count.sum()) == 0  # eval forward: nothing enqueued, mode restored
    f, cls = got["fd"]
    assert f.shape == (10, 8) and cls.tolist() == [0, 1, 2, 0, 1] * 2
    m.eval()
    with torch.no_grad():
        ref = torch.cat([(b["x"] if enqueue == "input" else m(b)).mean(1) for b in batches])
    torch.testing.assert_close(f, ref)
    with pytest.raises(ValueError, match="no front-door module"):
        collect_dictionary_features(nn.Linear(2, 2), batches)


def test_dictionary_file_round_trip_and_shape_errors(tmp_path):
    bank, count = torch.randn(3, 4, 8), torch.tensor([4, 2, 0])
    path = tmp_path / "d.pt"
    save_dictionary_file(path, {"fd": (bank, count)}, method="first")
    doc = load_dictionary_file(path)
    assert doc["meta"]["method"] == "first" and torch.equal(doc["modules"]["fd"]["bank"], bank)
    m = FrontDoorModule(3, dim=8, dict_size=4, ffn=8, self_blocks=1, cross_blocks=1)
    assert init_dictionary(m, path, name="other") == "fd"  # the only entry
    assert torch.equal(m.dictionary.bank, bank) and m.dictionary.count.tolist() == [4, 2, 0]
    assert m.dictionary.ptr.tolist() == [0, 2, 0]
    with pytest.raises(ValueError, match=r"expects \(3, 5, 8\)"):
        init_dictionary(FrontDoorModule(3, dim=8, dict_size=5, ffn=8, self_blocks=1, cross_blocks=1), path)
    torch.save({"bank": bank}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a confounder dictionary"):
        load_dictionary_file(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError, match="build-dictionary"):
        load_dictionary_file(tmp_path / "missing.pt")


def test_build_dictionary_command_and_dict_init(tiny_synth, tmp_path, capsys):
    root = tiny_synth(4, 2)
    common = ["build-dictionary", "cleanpose_synth_small", "--data", str(root), "--no-progress", "data.n_points=128",
              "model.args.distill.teacher=tiny"]  # (the preset's pretrained teacher file is irrelevant here)
    first, again, km = tmp_path / "first.pt", tmp_path / "again.pt", tmp_path / "km.pt"
    assert main([*common, "--out", str(first)]) == 0
    assert main([*common, "--out", str(again)]) == 0
    assert main([*common, "--out", str(km), "--kmeans", "2", "--frames", "3"]) == 0
    d1, d2, dk = (load_dictionary_file(p) for p in (first, again, km))
    b1, c1 = d1["modules"]["front_door"]["bank"], d1["modules"]["front_door"]["count"]
    assert b1.shape == (6, 16, 64) and torch.isfinite(b1).all()
    assert torch.equal(b1, d2["modules"]["front_door"]["bank"])  # deterministic
    n = d1["meta"]["instances"]
    assert int(c1.sum()) == n > 0  # fewer than 16 instances per class here: every instance is an entry
    for c in range(6):
        k = int(c1[c])
        assert (b1[c, :k].abs().sum(1) > 0).all() and (b1[c, k:] == 0).all()
    ck = dk["modules"]["front_door"]["count"]
    assert dk["meta"]["method"] == "kmeans" and dk["meta"]["frames"] == 3 and int(ck.max()) <= 2
    # the model's dict_init option fills the dictionary at construction
    m = build_model("cleanpose_small", causal={"dict_init": str(first)})
    assert torch.equal(m.front_door.dictionary.bank, b1) and torch.equal(m.front_door.dictionary.count, c1)
    with pytest.raises(ValueError, match="expects"):
        build_model("cleanpose_small", causal={"dict_init": str(first), "dict_size": 8})
    # errors name the problem
    assert main([*common, "--out", str(tmp_path / "x.pt"), "--kmeans", "17"]) == 1
    assert "more prototypes than the dictionary" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "x.pt"), "model.args.causal.enabled=false"]) == 1
    assert "no front-door module" in capsys.readouterr().err


@pytest.mark.parametrize("version", [1, 2])
def test_load_model_does_not_need_the_dictionary_file(tmp_path, version):
    """The dictionary file is dropped when a checkpoint is loaded: flat ``dict_init`` of a config-version-1
    checkpoint (upgraded on load) and nested ``causal.dict_init`` of today's."""
    from demopose.engine.checkpoint import load_model, save_checkpoint

    path = tmp_path / "dict.pt"
    save_dictionary_file(path, {"front_door": (torch.randn(6, 16, 64), torch.full((6,), 16))})
    layout = "batchnorm" if version == 1 else "upstream"  # version-1 checkpoints are read as the BN layout
    m = build_model("cleanpose_small", causal={"dict_init": str(path)}, mlp_layout=layout)
    args = {"dict_init": str(path)} if version == 1 else {"causal": {"dict_init": str(path)}}
    config = {"model": {"name": "cleanpose_small", "args": args}}
    extra = {} if version == 1 else {"config_version": 2}
    save_checkpoint(tmp_path / "m.pt", {"model": m.state_dict(), "config": config, **extra})
    path.unlink()  # the checkpoint holds the dictionary buffers
    assert torch.equal(load_model(tmp_path / "m.pt").front_door.dictionary.bank, m.front_door.dictionary.bank)
