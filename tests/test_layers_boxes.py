"""2D box overlap (IoU / GIoU known values) and pure-torch NMS against a brute-force reference."""

import numpy as np
import pytest
import torch

from demopose.layers.box_ops import box_iou, generalized_box_iou, giou_loss
from demopose.layers.nms import batched_nms, multiclass_nms, nms


def test_giou_known_values():
    a = torch.tensor([[0.0, 0, 2, 2], [0, 0, 1, 1], [0, 0, 2, 2]])
    b = torch.tensor([[0.0, 0, 2, 2], [2, 0, 3, 1], [1, 0, 3, 2]])
    g = generalized_box_iou(a, b, aligned=True)
    # identical: 1; disjoint, enclosing 3 x 1, union 2: 0 - 1/3; half overlap: IoU 2/6, enclosing = union
    assert torch.allclose(g, torch.tensor([1.0, -1 / 3, 1 / 3]), atol=1e-6)
    assert torch.allclose(box_iou(a, b, aligned=True), torch.tensor([1.0, 0.0, 1 / 3]), atol=1e-6)
    assert torch.allclose(giou_loss(a, b), 1 - g)
    # far apart: GIoU tends to -1
    far = generalized_box_iou(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([[1000.0, 1000, 1001, 1001]]))
    assert far.item() == pytest.approx(-1, abs=1e-5)
    # pairwise form agrees with the aligned form
    assert torch.allclose(generalized_box_iou(a, b).diagonal(), g)


def test_giou_gradient_flows_for_disjoint_boxes():
    p = torch.tensor([[0.0, 0, 1, 1]], requires_grad=True)
    giou_loss(p, torch.tensor([[2.0, 0, 3, 1]])).sum().backward()
    assert p.grad.abs().sum() > 0  # unlike IoU, GIoU pulls disjoint boxes together


def _brute_nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    def iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / ua

    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep: list[int] = []
    for i in order:
        if all(iou(boxes[i], boxes[k]) <= thr for k in keep):
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_matches_brute_force(seed):
    g = np.random.default_rng(seed)
    xy = g.uniform(0, 50, (80, 2))
    wh = g.uniform(5, 30, (80, 2))
    boxes = np.concatenate([xy, xy + wh], 1)
    scores = g.permutation(80) / 80.0  # distinct scores: a unique greedy order
    for thr in (0.3, 0.5, 0.7):
        got = nms(torch.tensor(boxes), torch.tensor(scores), thr).tolist()
        assert got == _brute_nms(boxes, scores, thr)
    labels = g.integers(0, 3, 80)
    got = sorted(batched_nms(torch.tensor(boxes), torch.tensor(scores), torch.tensor(labels), 0.5).tolist())
    want = sorted(i for c in range(3) for i in np.nonzero(labels == c)[0][
        _brute_nms(boxes[labels == c], scores[labels == c], 0.5)])
    assert got == want


def test_class_aware_nms_keeps_overlapping_boxes_of_other_classes():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 10, 10]])
    scores = torch.tensor([[0.9, 0.8], [0.1, 0.2], [0.7, 0.01]])
    prior, cls, s = multiclass_nms(boxes, scores, score_threshold=0.05, iou_threshold=0.6)
    # same box, two classes: both kept; duplicates within a class (box 1, box 2 at IoU 0.81) suppressed
    assert list(zip(prior.tolist(), cls.tolist())) == [(0, 0), (0, 1)]
    assert torch.allclose(s, torch.tensor([0.9, 0.8]))
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).numel() == 0


def test_detection2d_evaluator_known_values():
    from demopose.categories import NOCS_REAL
    from demopose.evaluation.detection2d import Detection2DEvaluator

    ev = Detection2DEvaluator(NOCS_REAL)
    kp_gt = np.zeros((2, 9, 2))
    kp_pred = np.zeros((3, 9, 2))
    kp_pred[0] += [3.0, 4.0]  # 5 px off
    # bottle GT found (IoU 1) with a duplicate (false positive, lower score); mug GT found at IoU 0.25 only
    ev.process(np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 5, 5]]), np.array([1, 1, 6]),
               np.array([0.9, 0.5, 0.8]), kp_pred, np.array([[0, 0, 10, 10], [0, 0, 10, 10]]),
               np.array([1, 6]), kp_gt)
    m = ev.evaluate()
    assert m["det2d/bottle/ap50"] == pytest.approx(1.0) and m["det2d/mug/ap50"] == 0.0
    assert m["det2d/mean/ap50"] == pytest.approx(0.5) and m["det2d/kpt_px"] == pytest.approx(5.0)
    assert np.isnan(m["det2d/bowl/ap50"])


def test_batched_nms_per_class_equals_one_greedy_pass_over_shifted_boxes():
    """Class-aware NMS runs class by class; it must keep exactly what one greedy pass over all the shifted boxes
    keeps, in the same order (random boxes, 6 classes, many tied scores)."""
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        n = int(torch.randint(1, 300, (1,), generator=g))
        xy = torch.rand(n, 2, generator=g) * 300
        boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 80 + 1], 1)
        scores = torch.round(torch.rand(n, generator=g) * 20) / 20
        cls = torch.randint(0, 6, (n,), generator=g)
        shifted = boxes - boxes.min() + (cls.float() * (boxes.max() - boxes.min() + 1))[:, None]
        assert torch.equal(batched_nms(boxes, scores, cls, 0.6), nms(shifted, scores, 0.6))
