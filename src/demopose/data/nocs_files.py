"""Decoders for the files of the original NOCS layout (Wang et al., CVPR 2019; hughw19/NOCS_CVPR2019).

One function per file kind; each raises ``FileNotFoundError`` / ``ValueError`` naming the file and what
was expected. Formats (notes/depth_and_eval.md §5):

* ``<id>_color.png``: 8-bit BGR(A) -> returned as ``(H, W, 3)`` uint8 **RGB**.
* ``<id>_depth.png``: REAL 16-bit millimetres; CAMERA 8-bit RGB(A) holding only the rendered objects,
  ``depth_mm = G·256 + R`` (cv2 BGR indexing: ``ch1·256 + ch2``), 32001 = no object -> 0 (the decoding of
  NOCS/SPD/GPV ``load_depth``). ``camera_full_depths/.../<id>_composed.png``: 16-bit millimetres.
* ``<id>_mask.png``: instance id in channel 2 of the cv2 image (gray for REAL), 255 = background -> 0.
* ``<id>_coord.png``: NOCS map; BGR -> RGB, /255, ``z := 1 - z``, minus 0.5 (NOCS ``dataset.py``).
* ``<id>_meta.txt``: ``inst class name`` (REAL) or ``inst class synset model`` (CAMERA) per line.
* ``gts/...pkl``: ground-truth pickles (``gt_RTs`` and, for CAMERA val, class ids, scales, boxes).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from demopose.io import read_pickle as _read_data_pickle

__all__ = [
    "CAMERA_NO_DEPTH",
    "MetaEntry",
    "check_png_complete",
    "decode_camera_depth",
    "decode_coord",
    "decode_depth_mm",
    "read_color",
    "read_coord",
    "read_depth",
    "read_gts_pkl",
    "read_mask",
    "read_meta",
    "read_png",
    "read_pickle",
]

log = logging.getLogger(__name__)

CAMERA_NO_DEPTH = 32001
"""Value of the decoded CAMERA object depth where no object was rendered (becomes 0)."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"


def check_png_complete(data: bytes, path: str | os.PathLike) -> None:
    """Raise ``ValueError`` unless ``data`` starts with the PNG signature and ends with the IEND chunk."""
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError(f"{path}: not a PNG file (bad signature)")
    if _PNG_IEND not in data[-32:]:
        raise ValueError(f"{path}: truncated PNG (no IEND chunk at the end of the file)")


def read_png(path: str | os.PathLike, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """Read a PNG with OpenCV, refusing missing, truncated or undecodable files.

    Returns the cv2 array (BGR(A) channel order for colour images), dtype as stored.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: file not found")
    data = p.read_bytes()
    check_png_complete(data, p)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None:
        raise ValueError(f"{p}: OpenCV could not decode the PNG")
    return img


def read_color(path: str | os.PathLike) -> np.ndarray:
    """``<id>_color.png`` -> ``(H, W, 3)`` uint8 RGB."""
    img = read_png(path)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.dtype != np.uint8 or img.shape[2] not in (3, 4):
        raise ValueError(f"{path}: expected an 8-bit RGB(A) colour image, got {img.dtype} {img.shape}")
    return np.ascontiguousarray(img[:, :, 2::-1])


def decode_camera_depth(img: np.ndarray) -> np.ndarray:
    """CAMERA object-only depth: cv2 ``(H, W, 3|4)`` uint8 -> ``(H, W)`` int32 millimetres, 0 = none.

    ``depth_mm = ch1 * 256 + ch2`` in cv2 BGR indexing (G·256 + R), int32 arithmetic so no uint8
    overflow; the "no object" value 32001 becomes 0 (NOCS / SPD ``load_depth``).
    """
    if img.ndim != 3 or img.shape[2] < 3:
        raise ValueError(f"CAMERA depth: expected an (H, W, 3|4) image, got shape {img.shape}")
    d = img[:, :, 1].astype(np.int32) * 256 + img[:, :, 2].astype(np.int32)
    d[d == CAMERA_NO_DEPTH] = 0
    return d


def decode_depth_mm(img: np.ndarray, path: str | os.PathLike = "depth") -> tuple[np.ndarray, str]:
    """Decode a depth image of either NOCS encoding.

    Returns:
        ``(H, W)`` int32 millimetres and the encoding name: ``"uint16"`` (REAL / composed, single
        channel 16 bit) or ``"camera_rgb"`` (8-bit RGB(A) object depth).

    Raises:
        ValueError: any other dtype / channel layout.
    """
    if img.ndim == 2 and img.dtype == np.uint16:
        return img.astype(np.int32), "uint16"
    if img.ndim == 3 and img.dtype == np.uint8 and img.shape[2] in (3, 4):
        return decode_camera_depth(img), "camera_rgb"
    raise ValueError(f"{path}: unsupported depth encoding {img.dtype} with shape {img.shape}; expected "
                     "16-bit single-channel millimetres or 8-bit RGB(A) CAMERA encoding")


def read_depth(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """Read a depth PNG -> ``((H, W) float32 metres, encoding)``; 0 = no measurement."""
    mm, enc = decode_depth_mm(read_png(path), path)
    return (mm.astype(np.float32) / 1000.0), enc


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """``<id>_mask.png`` -> ``(H, W)`` int32 instance ids, 0 = background (the file stores 255)."""
    img = read_png(path)
    if img.dtype != np.uint8:
        raise ValueError(f"{path}: expected an 8-bit mask, got {img.dtype}")
    m = img if img.ndim == 2 else img[:, :, 2]
    m = m.astype(np.int32)
    m[m == 255] = 0
    return m


def decode_coord(img: np.ndarray, object_mask: np.ndarray | None = None) -> np.ndarray:
    """cv2 coordinate image ``(H, W, 3|4)`` uint8 -> NOCS ``(H, W, 3)`` float32 in [-0.5, 0.5].

    BGR -> RGB, /255, ``z := 1 - z``, minus 0.5 (NOCS ``dataset.py`` ``load_coord``); NaN where
    ``object_mask (H, W)`` is False.
    """
    if img.ndim != 3 or img.shape[2] < 3 or img.dtype != np.uint8:
        raise ValueError(f"coord map: expected an 8-bit (H, W, 3|4) image, got {img.dtype} {img.shape}")
    c = img[:, :, 2::-1].astype(np.float32) / 255.0
    c[:, :, 2] = 1.0 - c[:, :, 2]
    c -= 0.5
    if object_mask is not None:
        c[~object_mask.astype(bool)] = np.nan
    return c


def read_coord(path: str | os.PathLike, object_mask: np.ndarray | None = None) -> np.ndarray:
    """Read ``<id>_coord.png`` -> ``(H, W, 3)`` float32 NOCS coordinates (see :func:`decode_coord`)."""
    img = read_png(path)
    try:
        return decode_coord(img, object_mask)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


@dataclass(frozen=True)
class MetaEntry:
    """One line of ``_meta.txt``.

    Attributes:
        inst_id: instance id (the mask value).
        class_id: NOCS class id, 0 = distractor / background object.
        model_name: REAL ``mug_daniel_norm``; CAMERA ``<synset>/<model_id>``.
        synset: CAMERA ShapeNet synset, None for REAL.
    """

    inst_id: int
    class_id: int
    model_name: str
    synset: str | None = None

    @property
    def model_id(self) -> str:
        """The model's own name (CAMERA: the ShapeNet model id without the synset)."""
        return self.model_name.split("/")[-1]


def read_meta(path: str | os.PathLike) -> list[MetaEntry]:
    """Parse ``_meta.txt`` (3 fields per line for REAL, 4 for CAMERA; blank lines ignored).

    Raises:
        ValueError: a line with another field count or non-integer ids (message names file and line).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: file not found")
    out: list[MetaEntry] = []
    for n, line in enumerate(p.read_text().splitlines(), start=1):
        f = line.split()
        if not f:
            continue
        if len(f) not in (3, 4):
            raise ValueError(f"{p}:{n}: expected 'inst class name' or 'inst class synset model', "
                             f"got {line!r}")
        try:
            inst, cls = int(f[0]), int(f[1])
        except ValueError:
            raise ValueError(f"{p}:{n}: instance and class ids must be integers, got {line!r}") from None
        if len(f) == 3:
            out.append(MetaEntry(inst, cls, f[2]))
        else:
            out.append(MetaEntry(inst, cls, f"{f[2]}/{f[3]}", f[2]))
    return out


def read_pickle(path: str | os.PathLike) -> object:
    """Unpickle a data file written by Python 2 or 3 (``latin1`` for Python 2 NumPy pickles) with an allow-list
    of NumPy arrays, dtypes and scalars and plain Python values (:func:`demopose.io.read_pickle`): a pickle
    holding anything else is refused before any of its code runs.

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable, or a refused type
            (:class:`~demopose.io.UnsafeFileError`, naming the file and the type).
    """
    return _read_data_pickle(path)


def read_gts_pkl(path: str | os.PathLike) -> dict:
    """Read and validate a NOCS ``gts`` pickle.

    Returns a dict with ``gt_RTs (N, 4, 4)`` float64 and, when present, ``gt_class_ids (N,)`` int64,
    ``gt_scales (N, 3)``, ``gt_bboxes (N, 4)`` (y1 x1 y2 x2), ``handle_visibility (N,)`` bool; other keys
    are passed through.

    Raises:
        ValueError: not a dict, ``gt_RTs`` missing, mis-shaped or not finite, or per-instance arrays whose
            length differs from ``gt_RTs`` or that hold NaN / infinity.
    """
    d = read_pickle(path)
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a dict, got {type(d).__name__}")
    if "gt_RTs" not in d:
        raise ValueError(f"{path}: key 'gt_RTs' missing (keys: {sorted(d)})")
    out = dict(d)
    try:
        rts = np.asarray(d["gt_RTs"], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: 'gt_RTs' is not an (N, 4, 4) array of numbers ({e})") from None
    if rts.size == 0:
        rts = rts.reshape(0, 4, 4)
    if rts.ndim != 3 or rts.shape[1:] != (4, 4):
        raise ValueError(f"{path}: 'gt_RTs' must have shape (N, 4, 4), got {rts.shape}")
    bad = np.nonzero(~np.isfinite(rts).all(axis=(1, 2)))[0]
    if len(bad):
        raise ValueError(f"{path}: 'gt_RTs' of instance(s) {bad.tolist()} hold NaN or infinite values")
    out["gt_RTs"] = rts
    n = len(rts)
    spec = {"gt_class_ids": (np.int64, ()), "gt_scales": (np.float64, (3,)),
            "gt_bboxes": (np.int64, (4,))}
    for key, (dtype, tail) in spec.items():
        if key in d:
            try:
                a = np.asarray(d[key], dtype=dtype)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}: '{key}' is not an array of {np.dtype(dtype).name} ({e})") from None
            if a.size == 0:
                a = a.reshape((0, *tail))
            if a.shape != (n, *tail):
                raise ValueError(f"{path}: '{key}' must have shape {(n, *tail)} to match gt_RTs, "
                                 f"got {a.shape}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{path}: '{key}' holds NaN or infinite values")
            out[key] = a
    for key in ("handle_visibility", "gt_handle_visibility"):
        if key in d:
            a = np.asarray(d[key]).reshape(-1)
            if len(a) != n:
                raise ValueError(f"{path}: '{key}' must have {n} entries to match gt_RTs, got {len(a)}")
            out["handle_visibility"] = a.astype(bool)
    return out
