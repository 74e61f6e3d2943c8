"""Issue #18, one table per theme: bad inputs, payload files, OS failures and interrupted runs.

Each case gives the input, the expected exit code (or exception), the words its one-line message must hold,
and checks that nothing ran (payload files: a marker file must not appear) and nothing was lost (lists,
checkpoints and logs are unchanged or were only extended).
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import stat
import subprocess
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from demopose.cli import main
from demopose.data.nocs import load_frame
from demopose.io import UnsafeFileError, load_torch_file, read_pickle, write_json_atomic, write_pickle_atomic

FIX = Path(__file__).parent / "fixtures" / "nocs_sample"
REAL = FIX / "Real/test/scene_1/0000"
REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted((REPO / "checkpoints").glob("*.pt")) + sorted((REPO / "src/demopose/assets").glob("*.pt"))


# ----------------------------------------------------------------------------------------------------------
# payload files


class _Payload:
    """Unpickling this runs code: it creates ``marker`` (through ``how``: os.system or exec)."""

    def __init__(self, marker: Path, how: str = "exec") -> None:
        self.marker, self.how = str(marker), how

    def __reduce__(self):
        if self.how == "system":
            return os.system, (f"touch {self.marker}",)
        return exec, (f"open({self.marker!r}, 'w').close()",)


def _payload_checkpoint(path: Path, marker: Path, how: str = "exec") -> Path:
    torch.save({"model": {"w": torch.zeros(2)}, "config": {"model": {"name": "gpv_small"}}, "step": 0,
                "extra": _Payload(marker, how)}, path)
    return path


def _nocs_copy(tmp_path: Path) -> Path:
    """A writable copy of the fixture dataset."""
    root = tmp_path / "nocs"
    shutil.copytree(FIX, root)
    return root


def _results_dict(class_id: int = 1) -> dict:
    RT = np.eye(4)
    RT[:3, 3] = (0, 0, 1)
    return {"image_path": "x", "gt_class_ids": np.array([class_id]), "gt_RTs": RT[None],
            "gt_scales": np.full((1, 3), 0.5), "gt_handle_visibility": np.array([1]),
            "pred_class_ids": np.array([class_id]), "pred_RTs": RT[None], "pred_scales": np.full((1, 3), 0.5),
            "pred_scores": np.array([0.9]), "pred_bboxes": np.array([[0, 0, 10, 10]])}


PAYLOAD_CASES = [
    # (id, command builder(tmp, marker) -> argv, expected rc, words in stderr)
    ("predict --checkpoint payload.pt (os.system)",
     lambda t, m: ["predict", str(REAL), "--masks", "gt", "--out", str(t / "o"),
                   "--checkpoint", str(_payload_checkpoint(t / "p.pt", m, "system"))], 1,
     ["p.pt", "refused", "posix.system", "nothing from this file was run"]),
    ("predict --checkpoint payload.pt (exec)",
     lambda t, m: ["predict", str(REAL), "--masks", "gt", "--out", str(t / "o"),
                   "--checkpoint", str(_payload_checkpoint(t / "p.pt", m))], 1, ["p.pt", "refused", "exec"]),
    ("test CONFIG payload.pt",
     lambda t, m: ["test", "gpv_synth_small", str(_payload_checkpoint(t / "p.pt", m)), str(FIX), "--out",
                   str(t / "o"), "--no-progress"], 1, ["p.pt", "refused"]),
    ("check-data on a dataset whose gts pkl is a payload",
     lambda t, m: ["check-data", str(_plant_gts_payload(t, m)), "--no-progress"], 1,
     ["results_real_test_scene_1_0000.pkl", "refused", "exec"]),
    ("check-data: payload hidden in an object array of the gts pkl",
     lambda t, m: ["check-data", str(_plant_gts_payload(t, m, in_array=True)), "--no-progress"], 1,
     ["results_real_test_scene_1_0000.pkl", "refused"]),
    ("show on a frame whose gts pkl is a payload",
     lambda t, m: ["show", str(_plant_gts_payload(t, m) / "Real/test/scene_1/0000"), "-o", str(t / "s.png")], 1,
     ["results_real_test_scene_1_0000.pkl", "refused"]),
    ("eval on a payload results pkl",
     lambda t, m: ["eval", str(_plant_results_payload(t, m)), "--out", str(t / "ev"), "--no-plots",
                   "--no-progress"], 1, ["r.pkl", "refused", "exec"]),
]


def _plant_gts_payload(tmp: Path, marker: Path, in_array: bool = False) -> Path:
    root = _nocs_copy(tmp)
    gts = root / "gts/real_test/results_real_test_scene_1_0000.pkl"
    d = read_pickle(gts)
    d["gt_RTs"] = np.array([_Payload(marker)], dtype=object) if in_array else _Payload(marker)
    gts.write_bytes(pickle.dumps(d))
    return root


def _plant_results_payload(tmp: Path, marker: Path) -> Path:
    d = _results_dict()
    d["pred_scores"] = _Payload(marker)
    folder = tmp / "results"
    folder.mkdir()
    (folder / "r.pkl").write_bytes(pickle.dumps(d))
    return folder


@pytest.mark.parametrize("case", PAYLOAD_CASES, ids=[c[0] for c in PAYLOAD_CASES])
def test_payload_files_never_run(case, tmp_path, capsys):
    _, argv, rc, words = case
    marker = tmp_path / "PWNED"
    assert main(argv(tmp_path, marker)) == rc
    cap = capsys.readouterr()
    err = cap.err + cap.out  # check-data lists its problems on stdout
    for w in words:
        assert w in err, (w, err)
    assert not marker.exists(), "the payload ran"
    assert "Traceback" not in err


def test_payloads_refused_by_every_loader(tmp_path):
    """The library entry points: torch files, data pickles (each protocol), and the checkpoint loaders."""
    from demopose.data.nocs_files import read_gts_pkl
    from demopose.engine.checkpoint import load_checkpoint, load_model, load_weights
    from demopose.evaluation import read_results_pkl
    from demopose.predictor import Predictor

    marker = tmp_path / "PWNED"
    ck = _payload_checkpoint(tmp_path / "p.pt", marker)
    legacy = tmp_path / "legacy.pt"
    torch.save({"model": {}, "x": _Payload(marker, "system")}, legacy, _use_new_zipfile_serialization=False)
    for fn in (lambda: load_torch_file(ck), lambda: load_checkpoint(ck), lambda: load_checkpoint(ck, strict=True),
               lambda: load_model(ck), lambda: load_weights(torch.nn.Linear(1, 1), ck),
               lambda: Predictor.from_checkpoint(ck), lambda: load_checkpoint(legacy)):
        with pytest.raises(UnsafeFileError, match="refused"):
            fn()
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        p = tmp_path / f"g{proto}.pkl"
        p.write_bytes(pickle.dumps({"gt_RTs": _Payload(marker)}, protocol=proto))
        for fn in (read_pickle, read_gts_pkl, read_results_pkl):
            with pytest.raises(UnsafeFileError, match=rf"{p.name}.*refused.*builtins\.exec"):
                fn(p)
    assert not marker.exists()


def test_data_pickles_of_every_protocol_still_load(tmp_path):
    d = {"a": np.arange(3), "f": np.float64(2.5), "b": np.bool_(True), "o": np.array([1, "x"], dtype=object),
         "rec": np.zeros(2, dtype=[("a", "f4")]), "u16": np.zeros((2, 2), np.uint16), "s": {1, 2},
         "bytes": b"ab", "c": complex(1, 2), "t": (1, None), "str": np.array(["ab"])}
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        p = tmp_path / f"d{proto}.pkl"
        p.write_bytes(pickle.dumps(d, protocol=proto))
        out = read_pickle(p)
        assert out["bytes"] == b"ab" and out["o"][1] == "x" and out["u16"].dtype == np.uint16
        assert np.array_equal(out["a"], d["a"]) and out["s"] == {1, 2} and out["rec"].dtype == d["rec"].dtype
    for p in sorted(FIX.rglob("*.pkl")):  # NOCS's own (Python 2) pickles
        assert isinstance(read_pickle(p), dict)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_checkpoints_load_weights_only(path):
    """The committed checkpoints hold tensors and plain values only: they load with strict=True, and those with
    a model config rebuild their model."""
    from demopose.engine.checkpoint import load_checkpoint, load_model

    state = load_torch_file(path)  # tensors and plain values only: no allow-list needed
    assert isinstance(state, dict)
    if "model" in state:
        load_checkpoint(path, strict=True)
        if ((state.get("config") or {}).get("model") or {}).get("name"):
            assert isinstance(load_model(path), torch.nn.Module)


def test_no_unsafe_loading_in_the_sources():
    """Every torch.load in the package is weights-only and every unpickling goes through demopose.io."""
    for f in sorted((REPO / "src/demopose").rglob("*.py")):
        text = f.read_text()
        for n, line in enumerate(text.splitlines(), start=1):
            if "torch.load(" in line and "weights_only=True" not in line:
                pytest.fail(f"{f}:{n}: torch.load without weights_only=True: {line.strip()}")
            if ("pickle.load(" in line or "pickle.loads(" in line or "pickle.Unpickler(" in line) \
                    and f.name != "io.py":
                pytest.fail(f"{f}:{n}: unpickling outside demopose.io: {line.strip()}")


# ----------------------------------------------------------------------------------------------------------
# native kernels and the ONNX cache


def _compiler_or_skip():
    import demopose.native._build as build

    if build._compiler() is None:
        pytest.skip("no C compiler")
    return build


def test_planted_native_library_in_a_shared_cache_never_loads(tmp_path, monkeypatch):
    """A library planted under the predictable name in a folder others can write to (or owned by someone
    else) is not loaded: the kernel is built privately instead, with a warning naming the reason."""
    build = _compiler_or_skip()
    marker = tmp_path / "PWNED"
    evil_c = tmp_path / "evil.c"
    evil_c.write_text('#include <stdio.h>\n__attribute__((constructor)) static void run(void) '
                      f'{{ FILE *f = fopen("{marker}", "w"); if (f) fclose(f); }}\n')
    name = build.build_library("knn", folder=tmp_path / "probe").name  # the predictable cache name
    cases = [("world-writable folder", 0o777, None, "writable by others"),
             ("file of another user", 0o755, 12345, "owned by user id 12345")]
    for what, folder_mode, owner, words in cases:
        cache = tmp_path / what.replace(" ", "_")
        (cache / "native").mkdir(parents=True)
        planted = cache / "native" / name
        subprocess.run([build._compiler(), "-shared", "-fPIC", "-o", str(planted), str(evil_c)], check=True)
        os.chmod(cache / "native", folder_mode)
        if owner is not None:
            if os.geteuid() != 0:
                continue  # only root can give a file away
            os.chown(planted, owner, owner)
        monkeypatch.setenv("DEMOPOSE_CACHE", str(cache))
        monkeypatch.setattr(build, "_loaded", {})
        with pytest.warns(RuntimeWarning, match=words):
            lib = build.load_library("knn")
        assert lib is not None and not marker.exists(), what
    monkeypatch.setattr(build, "_loaded", {})


def test_own_private_cache_is_used_without_warning(tmp_path, monkeypatch):
    build = _compiler_or_skip()
    monkeypatch.setenv("DEMOPOSE_CACHE", str(tmp_path / "c"))
    monkeypatch.setattr(build, "_loaded", {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build.load_library("knn") is not None
    folder = tmp_path / "c" / "native"
    assert folder.stat().st_mode & 0o022 == 0 and len(list(folder.glob("knn-*.so"))) == 1
    assert build.unsafe_reason(next(folder.glob("knn-*.so"))) is None
    monkeypatch.setattr(build, "_loaded", {})


def test_damaged_onnx_cache_entry_is_exported_again(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from demopose import predictor as P

    monkeypatch.setenv("DEMOPOSE_CACHE", str(tmp_path))
    calls = []

    def fake_export(ck, target):  # the real export is covered by test_export_onnx; here only the cache matters
        calls.append(target)
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_bytes(b"onnx bytes " + str(len(calls)).encode())
        return {"model": Path(target)}

    monkeypatch.setattr("demopose.export.onnx_export.export_checkpoint", fake_export)
    ck = tmp_path / "m.pt"
    ck.write_bytes(b"checkpoint")
    target = P._exported(ck)
    assert len(calls) == 1 and P._exported(ck) == target and len(calls) == 1  # cached
    target.write_bytes(target.read_bytes()[:5])  # truncated
    assert P._exported(ck) == target and len(calls) == 2
    target.unlink()  # missing
    P._exported(ck)
    assert len(calls) == 3
    target.with_suffix(".done").write_text(str(target))  # a marker of the old format (no hashes)
    P._exported(ck)
    assert len(calls) == 4
    doc = json.loads(target.with_suffix(".done").read_text())
    assert doc["files"][0]["sha256"] == P._file_sha256(target)


# ----------------------------------------------------------------------------------------------------------
# plausible but wrong camera data: the API


@pytest.fixture(scope="module")
def real():
    return load_frame(REAL)


@pytest.fixture(scope="module")
def predictor():
    from demopose.predictor import Predictor

    return Predictor.from_checkpoint()


def _K(real, **kw):
    K = real.K.copy()
    for k, v in kw.items():
        K[{"fx": (0, 0), "fy": (1, 1), "cx": (0, 2), "cy": (1, 2)}[k]] = v
    return K


API_CASES = [
    # (id, predict kwargs from the frame, words of the ValueError)
    ("fy = inf", lambda f: {"K": _K(f, fy=np.inf)}, ["K", "infinite"]),
    ("fy = 1e-3", lambda f: {"K": _K(f, fy=1e-3)}, ["fy", "implausible"]),
    ("fx = 0", lambda f: {"K": _K(f, fx=0.0)}, ["fx", "implausible"]),
    ("fx far from fy", lambda f: {"K": _K(f, fx=1500.0)}, ["fx", "fy", "factor 2"]),
    ("principal point outside", lambda f: {"K": _K(f, cx=900.0)}, ["principal point", "640x480"]),
    ("NaN cy", lambda f: {"K": _K(f, cy=np.nan)}, ["K", "NaN"]),
    ("K with a wrong last row", lambda f: {"K": np.vstack([f.K[:2], [0, 1, 1]])}, ["0, 0, 1"]),
    ("boolean depth", lambda f: {"depth": f.depth > 0}, ["depth", "bool"]),
    ("complex depth", lambda f: {"depth": f.depth.astype(np.complex64)}, ["depth", "complex64"]),
    ("millimetres as metres", lambda f: {"depth": f.depth * 1000}, ["millimetres", "depth_scale"]),
    ("depth_scale 10x too large", lambda f: {"depth": (f.depth * 1000).astype(np.uint16), "depth_scale": 0.01},
     ["10x too large", "depth_scale = 0.01"]),
    ("depth_scale 10x too small", lambda f: {"depth": (f.depth * 1000).astype(np.uint16), "depth_scale": 1e-4},
     ["too small", "depth_scale = 0.0001"]),
    ("depth_scale 10x too large, detector masks",
     lambda f: {"depth": (f.depth * 1000).astype(np.uint16), "depth_scale": 0.01, "masks": None},
     ["too large", "depth_scale"]),
    ("random float masks", lambda f: {"masks": np.random.default_rng(0).random((5, 480, 640), np.float32)},
     ["masks", "distinct values", "threshold"]),
    ("masks of the wrong size", lambda f: {"masks": np.ones((5, 240, 320), bool)}, ["masks", "480, 640"]),
    ("an empty mask", lambda f: {"masks": np.concatenate([_masks(f)[:4], np.zeros((1, 480, 640), bool)])},
     ["mask(s) [4]", "empty"]),
    ("class ids 0 / 99 / -1", lambda f: {"class_ids": [0, 99, -1, 1, 2]}, ["class_ids", "[0, 99, -1]"]),
    ("fractional class id", lambda f: {"class_ids": [1.5, 1, 1, 1, 1]}, ["class_ids", "integer"]),
    ("scores of the wrong length", lambda f: {"scores": [0.5, 0.4]}, ["scores", "expected 5", "got 2"]),
    ("NaN score", lambda f: {"scores": [0.5, np.nan, 1, 1, 1]}, ["scores", "NaN"]),
]


def _masks(f):
    return np.stack([f.instance_map == i for i in f.instance_ids])


@pytest.mark.parametrize("case", API_CASES, ids=[c[0] for c in API_CASES])
def test_predictor_refuses_wrong_camera_data(case, real, predictor):
    _, make, words = case
    kw = {"rgb": real.rgb, "depth": real.depth, "K": real.K, "masks": _masks(real), "class_ids": real.class_ids}
    kw.update(make(real))
    if kw["masks"] is None:
        kw.pop("class_ids")
    with pytest.raises(ValueError) as e:
        predictor.predict(**kw)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_predictor_accepts_the_right_data(real, predictor):
    """The checks do not fire on correct data: float metres, millimetres with depth_scale, 0/255 masks."""
    m = _masks(real)
    assert len(predictor.predict(real.rgb, real.depth, real.K, m, real.class_ids)) == 5
    mm = (real.depth * 1000).astype(np.uint16)
    assert len(predictor.predict(real.rgb, mm, real.K, (m * 255).astype(np.uint8), real.class_ids,
                                 depth_scale=0.001)) == 5


# ----------------------------------------------------------------------------------------------------------
# the commands: bad values and OS failures give one line, a bad frame is skipped, nothing is lost


def _user_folder(tmp: Path, real, camera: dict | str, bad_second: bool = False) -> Path:
    user = tmp / "mine"
    user.mkdir(exist_ok=True)
    cv2.imwrite(str(user / "a_color.png"), real.rgb[:, :, ::-1])
    cv2.imwrite(str(user / "a_depth.png"), (real.depth * 1000).astype(np.uint16))
    if bad_second:
        cv2.imwrite(str(user / "b_color.png"), real.rgb[:, :, ::-1])
        cv2.imwrite(str(user / "b_depth.png"), (real.depth * 100).astype(np.uint8))  # 8-bit depth
    (user / "camera.json").write_text(camera if isinstance(camera, str) else json.dumps(camera))
    return user


def _cam(real, **kw):
    K = real.K
    d = {"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2], "depth_scale": 0.001}
    d.update(kw)
    return d


CLI_CASES = [
    # (id, argv builder(tmp, real), expected rc, words in stderr)
    ("predict: non-existent path", lambda t, r: ["predict", str(t / "nope" / "0000_color.png")], 1,
     ["nope/0000_color.png", "no such file"]),
    ("predict: non-existent folder", lambda t, r: ["predict", str(t / "no_folder")], 1, ["no_folder", "no such"]),
    ("predict: camera.json width 'abc'",
     lambda t, r: ["predict", str(_user_folder(t, r, _cam(r, width="abc"))), "--out", str(t / "o")], 1,
     ["camera.json", "'width'", "whole number", '"abc"']),
    ("predict: ragged K",
     lambda t, r: ["predict", str(_user_folder(t, r, {"K": [[500, 0, 320], [0, 500], [0, 0, 1]]})), "--out",
                   str(t / "o")], 1, ["camera.json", "'K'", "3 rows of 3 numbers"]),
    ("predict: fy Infinity",
     lambda t, r: ["predict", str(_user_folder(t, r, json.dumps(_cam(r)).replace(str(r.K[1, 1]), "Infinity"))),
                   "--out", str(t / "o")], 1, ["camera.json", "infinite"]),
    ("predict: fy 1e-3",
     lambda t, r: ["predict", str(_user_folder(t, r, _cam(r, fy=1e-3))), "--out", str(t / "o")], 1,
     ["a_depth.png", "fy", "implausible", "skipped"]),
    ("predict: depth_scale 10x too large",
     lambda t, r: ["predict", str(_user_folder(t, r, _cam(r, depth_scale=0.01))), "--out", str(t / "o"),
                   "--masks", "detector"], 1, ["a_depth.png", "too large", "depth_scale"]),
    ("predict: boolean depth_scale",
     lambda t, r: ["predict", str(_user_folder(t, r, _cam(r, depth_scale=True))), "--out", str(t / "o")], 1,
     ["camera.json", "'depth_scale'", "number"]),
    ("predict: truncated .onnx",
     lambda t, r: ["predict", str(REAL), "--masks", "gt", "--backend", "onnxruntime", "--out", str(t / "o"),
                   "--checkpoint", str(_bytes(t / "x.onnx", b"\x0a\xff\xff\x08"))], 1,
     ["x.onnx", "not a readable ONNX model"]),
    ("predict: --out is a file",
     lambda t, r: ["predict", str(REAL), "--masks", "gt", "--out", str(_file(t / "taken"))], 1,
     ["taken", "is a file"]),
    ("eval: class ids beyond the table",
     lambda t, r: ["eval", str(_results_folder(t, [1, 99])), "--out", str(t / "ev"), "--no-plots",
                   "--no-progress"], 1, ["f1.pkl", "[99]", "not categories of nocs_real", "1 of 2"]),
    ("eval: class ids 0 and -1",
     lambda t, r: ["eval", str(_results_folder(t, [2, 0, -1])), "--out", str(t / "ev"), "--no-plots",
                   "--no-progress"], 1, ["f1.pkl", "[0]", "f2.pkl", "[-1]", "2 of 3"]),
    ("eval: NaN pose in a results pkl", lambda t, r: ["eval", str(_results_folder(t, [1, "nan"])), "--out",
                                                      str(t / "ev"), "--no-plots", "--no-progress"], 1,
     ["f1.pkl", "NaN"]),
    ("eval: --out is a file",
     lambda t, r: ["eval", str(_results_folder(t, [1])), "--out", str(_file(t / "taken")), "--no-plots"], 1,
     ["taken", "is a file"]),
    ("show: NaN gt_RTs", lambda t, r: ["show", str(_gts_edit(t, "nan") / "Real/test/scene_1/0000"), "-o",
                                       str(t / "s.png")], 1, ["results_real_test_scene_1_0000.pkl", "gt_RTs", "NaN"]),
    ("check-data: ragged gt_RTs", lambda t, r: ["check-data", str(_gts_edit(t, "ragged")), "--no-progress"], 1,
     ["results_real_test_scene_1_0000.pkl", "gt_RTs"]),
    ("synth: --out is a file",
     lambda t, r: ["synth", str(_file(t / "taken")), "--frames", "1", "--size", "64x48", "--no-progress"], 1,
     ["taken", "is a file"]),
    ("check-data: truncated gts pkl", lambda t, r: ["check-data", str(_gts_edit(t, "truncate")), "--no-progress"],
     1, ["results_real_test_scene_1_0000.pkl", "truncated"]),
]


def _bytes(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


def _file(p: Path) -> Path:
    p.write_text("I am a file")
    return p


def _results_folder(tmp: Path, ids: list) -> Path:
    folder = tmp / "results"
    folder.mkdir(exist_ok=True)
    for i, c in enumerate(ids):
        d = _results_dict(1 if c == "nan" else c)
        if c == "nan":
            d["pred_RTs"] = np.full((1, 4, 4), np.nan)
        write_pickle_atomic(folder / f"f{i}.pkl", d)
    return folder


def _gts_edit(tmp: Path, how: str) -> Path:
    root = _nocs_copy(tmp)
    gts = root / "gts/real_test/results_real_test_scene_1_0000.pkl"
    if how == "truncate":
        gts.write_bytes(gts.read_bytes()[:200])
        return root
    d = read_pickle(gts)
    if how == "nan":
        d["gt_RTs"] = d["gt_RTs"].copy()
        d["gt_RTs"][1, 0, 0] = np.nan
    else:
        d["gt_RTs"] = [np.eye(4), np.eye(3)]
    gts.write_bytes(pickle.dumps(d))
    return root


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_commands_give_one_clear_line(case, tmp_path, real, capsys):
    _, argv, rc, words = case
    args = argv(tmp_path, real)
    assert main([*args, *(["--no-progress"] if args[0] == "predict" else [])]) == rc
    cap = capsys.readouterr()
    err = cap.err + cap.out  # check-data lists its problems on stdout
    for w in words:
        assert w in err, (w, err)
    assert "Traceback" not in err


def test_predict_goes_on_past_a_bad_frame(tmp_path, real, capsys):
    user = _user_folder(tmp_path, real, _cam(real), bad_second=True)
    out = tmp_path / "o"
    assert main(["predict", str(user), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "b_depth.png" in err and "8-bit depth" in err and "1 of 2 frame(s) skipped" in err
    assert (out / "a.json").is_file() and not (out / "b.json").exists()


def test_eval_goes_on_past_a_bad_file(tmp_path, capsys):
    folder = _results_folder(tmp_path, [1, 99, 2])
    (folder / "f3.pkl").write_bytes(b"\x80\x04not a pickle")
    assert main(["eval", str(folder), "--out", str(tmp_path / "ev"), "--no-plots", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "2 of 4 results file(s) skipped" in err and "f1.pkl" in err and "f3.pkl" in err
    doc = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert doc["num_files"] == 2 and doc["metrics"]["nocs/mean/iou25"] == 1.0


# ----------------------------------------------------------------------------------------------------------
# OS failures: full disk, read-only folder, a file in the way; outputs follow the umask


def test_full_disk_says_disk_full_and_names_the_file(tmp_path, monkeypatch, capsys):
    real_write = Path.write_bytes

    def full(self, data):
        if self.name.startswith(".m.json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    folder = _results_folder(tmp_path, [1])
    (tmp_path / "m.json").write_text("old")
    with pytest.raises(OSError) as e:
        write_json_atomic(tmp_path / "m.json", {"a": 1})
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "m.json")
    assert (tmp_path / "m.json").read_text() == "old" and [p.name for p in tmp_path.glob(".m.json*")] == []

    def full_checkpoint(self, data):
        if self.name.startswith(".metrics.json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_checkpoint)
    assert main(["eval", str(folder), "--out", str(tmp_path / "ev"), "--no-plots", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "metrics.json" in err and "disk full" in err and "Traceback" not in err


def test_read_only_output_folder(tmp_path, monkeypatch, capsys):
    import tempfile

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", k.get("dir"))

    folder = _results_folder(tmp_path, [1])
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    assert main(["eval", str(folder), "--out", str(tmp_path / "ev"), "--no-plots", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "metrics.json" in err and "permission denied" in err.lower() and "Traceback" not in err
    monkeypatch.undo()
    if os.geteuid() == 0:
        return  # root writes into read-only folders: the real chmod case needs another user
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        assert main(["eval", str(folder), "--out", str(ro / "ev"), "--no-plots", "--no-progress"]) == 1
        assert "permission denied" in capsys.readouterr().err.lower()
    finally:
        os.chmod(ro, 0o755)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_outputs_follow_the_umask(tmp_path, umask):
    from demopose.engine.checkpoint import save_checkpoint

    old = os.umask(umask)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        write_pickle_atomic(tmp_path / "r.pkl", {"x": 1})
        save_checkpoint(tmp_path / "c.pt", {"model": {}})
        for f in ("a.json", "r.pkl", "c.pt"):
            assert stat.S_IMODE((tmp_path / f).stat().st_mode) == 0o666 & ~umask, f
    finally:
        os.umask(old)


# ----------------------------------------------------------------------------------------------------------
# synth and check-data: a split list never shrinks silently


@pytest.fixture
def small_split(tmp_path):
    root = tmp_path / "synth"
    argv = ["synth", str(root), "--frames", "3", "--style", "real", "--split", "train", "--size", "64x48",
            "--models-per-category", "1", "--no-progress"]
    assert main(argv) == 0
    return root, argv


def _set(argv, flag, value):
    argv = list(argv)
    argv[argv.index(flag) + 1] = value
    return argv


SYNTH_CASES = [
    # (id, argv edit, expected rc, words, expected list length afterwards)
    ("fewer frames", lambda a: _set(a, "--frames", "2"), 1, ["train_list.txt", "already holds 3 frames",
                                                             "--frames 2 would shrink", "--frames 3"], 3),
    ("other settings", lambda a: _set(_set(a, "--frames", "4"), "--models-per-category", "2"), 1,
     ["train_synth.json", "models_per_category: 1 recorded, 2 now"], 3),
    ("other seed", lambda a: [*a, "--seed", "7"], 1, ["train_synth.json", "seed: 0 recorded, 7 now"], 3),
    ("same settings, more frames", lambda a: _set(a, "--frames", "4"), 0, [], 4),
    ("same settings, same frames", lambda a: a, 0, [], 3),
]


@pytest.mark.parametrize("case", SYNTH_CASES, ids=[c[0] for c in SYNTH_CASES])
def test_synth_never_shrinks_or_mixes_a_split(case, small_split, capsys):
    _, edit, rc, words, n_after = case
    root, argv = small_split
    lst = root / "Real" / "train_list.txt"
    before = lst.read_text().splitlines()
    capsys.readouterr()
    assert main(edit(argv)) == rc
    err = capsys.readouterr().err
    for w in words:
        assert w in err, (w, err)
    after = lst.read_text().splitlines()
    assert len(after) == n_after and after[: len(before)] == before


def test_synth_refuses_another_generator_version(small_split, capsys):
    root, argv = small_split
    info = root / "Real" / "train_synth.json"
    doc = json.loads(info.read_text())
    assert doc["generator_version"] >= 1
    doc["generator_version"] = 999
    info.write_text(json.dumps(doc))
    assert main(argv) == 1
    assert "generator version 999" in capsys.readouterr().err


CHECK_CASES = [
    # (id, how the list is damaged, words)
    ("empty list", lambda lines: [], ["train_list.txt", "empty split list"]),
    ("shrunk list", lambda lines: lines[:1], ["train_list.txt", "2 of 3 frames", "not in the list"]),
    ("listed frame missing", lambda lines: [*lines, "train/scene_9/0000"],
     ["train_list.txt", "1 of 4 listed frames are not on disk", "line 4"]),
]


@pytest.mark.parametrize("case", CHECK_CASES, ids=[c[0] for c in CHECK_CASES])
def test_check_data_reports_bad_split_lists(case, small_split, capsys):
    _, damage, words = case
    root, _ = small_split
    lst = root / "Real" / "train_list.txt"
    assert main(["check-data", str(root), "--no-progress", "--quiet"]) == 0
    lst.write_text("".join(x + "\n" for x in damage(lst.read_text().splitlines())))
    capsys.readouterr()
    assert main(["check-data", str(root), "--no-progress", "--quiet"]) == 1
    out = capsys.readouterr().out
    for w in words:
        assert w in out, (w, out)


def test_train_names_an_empty_split_list(small_split, tmp_path, capsys):
    root, _ = small_split
    (root / "Real" / "train_list.txt").write_text("")
    # train.eval_every=0: this data has no val split, which is then skipped (a missing one is named first otherwise)
    assert main(["train", "gpv_synth_small", "--data", str(root), "--out", str(tmp_path / "run"),
                 "--no-progress", "train.eval_every=0"]) == 1
    assert "empty split list" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------
# resume: torn log line, changed settings, partial files, damaged last.pt


@pytest.fixture(scope="module")
def trained_run(tiny_synth, tmp_path_factory):
    data = tiny_synth(4, 2)
    run = tmp_path_factory.mktemp("rel_run") / "run"
    args = ["train", "gpv_synth_small", "--data", str(data), "--out", str(run), "--no-progress",
            "train.batch_size=2", "train.num_workers=0", "train.checkpoint_every=2", "train.eval_every=0",
            "train.val_frames=1", "data.n_points=128"]
    assert main([*args, "train.max_steps=4"]) == 0
    return run, args


def _copy_run(trained_run, tmp_path):
    run, args = trained_run
    new = tmp_path / "run"
    shutil.copytree(run, new)
    return new, _set(args, "--out", str(new))


def _steps(run: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_resume_drops_a_torn_log_line_with_a_warning(trained_run, tmp_path, caplog):
    run, args = _copy_run(trained_run, tmp_path)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "loss/tot')  # what a crash or a full disk leaves
    assert main([*args, "train.max_steps=6"]) == 0
    assert "metrics.jsonl" in caplog.text and "torn last line" in caplog.text
    steps = _steps(run)
    assert steps == sorted(set(steps)) and steps[-1] == 6 and 4 in steps


def test_resume_refuses_a_damaged_log_line_in_the_middle(trained_run, tmp_path, capsys):
    run, args = _copy_run(trained_run, tmp_path)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(["{broken", *lines]) + "\n")
    assert main([*args, "train.max_steps=6"]) == 1
    assert "metrics.jsonl:1" in capsys.readouterr().err


RESUME_CASES = [
    # (id, extra overrides, allow flag, expected rc, words in stderr (refusal) or in resumes.jsonl)
    ("batch changed", ["train.batch_size=4"], False, 1, ["last.pt", "train.batch_size: 2 -> 4",
                                                          "--allow-changed-config"]),
    ("model changed", ["model.name=gpv"], False, 1, ["model.name: 'gpv_small' -> 'gpv'"]),
    ("optimizer lr changed", ["train.optimizer.lr=0.01"], False, 1, ["train.optimizer.lr"]),
    ("seed changed", ["train.seed=3"], False, 1, ["train.seed: 0 -> 3"]),
    ("data subset changed", ["data.train_subset=real_test"], False, 1, ["data.train_subset"]),
    ("batch changed, allowed", ["train.batch_size=4"], True, 0, ['"train.batch_size"', '"kind": "meaning"']),
    ("logistics changed", ["train.log_every=1", "train.checkpoint_every=1", "train.eval_every=5"], False, 0,
     ['"train.log_every"', '"kind": "logistics"']),
]


@pytest.mark.parametrize("case", RESUME_CASES, ids=[c[0] for c in RESUME_CASES])
def test_resume_refuses_changed_settings(case, trained_run, tmp_path, capsys):
    _, extra, allow, rc, words = case
    run, args = _copy_run(trained_run, tmp_path)
    before = (run / "last.pt").read_bytes()
    cfg_before = (run / "config.yaml").read_text()
    assert main([*args, "train.max_steps=5", *extra, *(["--allow-changed-config"] if allow else [])]) == rc
    err = capsys.readouterr().err
    if rc:
        for w in words:
            assert w in err, (w, err)
        # nothing ran, nothing lost: the checkpoint and the recorded config are untouched
        assert (run / "last.pt").read_bytes() == before and (run / "config.yaml").read_text() == cfg_before
        assert _steps(run)[-1] == 4
    else:
        record = (run / "resumes.jsonl").read_text()
        for w in words:
            assert w in record, (w, record)
        assert "max_steps" in record and _steps(run)[-1] == 5


def test_resume_removes_partial_files_and_falls_back_from_a_damaged_last_pt(trained_run, tmp_path, caplog):
    from demopose.engine.checkpoint import load_checkpoint

    run, args = _copy_run(trained_run, tmp_path)
    assert load_checkpoint(run / "last.prev.pt")["step"] == 2  # the previous last.pt is kept
    assert load_checkpoint(run / "best.pt")["step"] == 4
    (run / "best.pt").unlink()  # so that the fallback is last.prev.pt (best.pt is covered below)
    partial = run / ".last.pt.ab12cd34.pt"
    partial.write_bytes(b"half a checkpoint")
    (run / "last.pt").write_bytes((run / "last.pt").read_bytes()[:4000])  # damaged after it was written
    assert main([*args, "train.max_steps=5"]) == 0
    assert not partial.exists() and "partial checkpoint" in caplog.text
    assert "falling back" in caplog.text and "last.prev.pt (step 2)" in caplog.text
    assert load_checkpoint(run / "last.pt")["step"] == 5
    steps = _steps(run)
    assert steps == sorted(set(steps)) and steps[-1] == 5  # lines past the fallback step were rewritten
    assert "last.pt" in (run / "resumes.jsonl").read_text()


def test_resume_falls_back_to_best_and_says_when_nothing_is_readable(trained_run, tmp_path, capsys, caplog):
    run, args = _copy_run(trained_run, tmp_path)
    (run / "last.pt").write_bytes(b"garbage")
    assert main([*args, "train.max_steps=5"]) == 0  # the newest complete one: best.pt of step 4
    assert "best.pt (step 4)" in caplog.text
    run, args = _copy_run(trained_run, tmp_path / "again")
    for f in ("last.pt", "last.prev.pt", "best.pt"):
        (run / f).write_bytes(b"garbage")
    assert main([*args, "train.max_steps=5"]) == 1
    err = capsys.readouterr().err
    assert "no readable checkpoint" in err and "--no-resume" in err and "best.pt" in err
    assert (run / "last.pt").read_bytes() == b"garbage"  # nothing overwritten


def test_train_out_is_a_file(tmp_path, tiny_synth, capsys):
    taken = _file(tmp_path / "taken")
    assert main(["train", "gpv_synth_small", "--data", str(tiny_synth(4, 2)), "--out", str(taken),
                 "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "taken" in err and "is a file" in err and taken.read_text() == "I am a file"


def test_full_disk_during_training_says_disk_full(trained_run, tmp_path, monkeypatch, capsys):
    from demopose.engine.checkpoint import load_checkpoint

    run, args = _copy_run(trained_run, tmp_path)
    real_write = Path.write_bytes

    def full(self, data):
        if self.name.startswith(".last.pt."):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    assert main([*args, "train.max_steps=6"]) == 1
    err = capsys.readouterr().err
    assert "last.pt" in err and "disk full" in err and "Traceback" not in err
    assert load_checkpoint(run / "last.pt")["step"] == 4 and not list(run.glob(".last.pt.*"))  # nothing lost
