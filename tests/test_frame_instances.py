"""The one record of a frame's objects (:class:`demopose.data.frame_instances.Instances`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from demopose.data import Instances


def _inst(m: int = 3) -> Instances:
    return Instances(class_ids=np.arange(1, m + 1), scores=np.linspace(1, 0.5, m), boxes=np.zeros((m, 4)),
                     masks=np.zeros((m, 4, 5), bool), keypoints=np.zeros((m, 9, 2)), rel_size=np.ones((m, 3)),
                     features={0: torch.zeros(1, 2, 3, 3)})


def test_select_keeps_every_per_object_field_and_the_frame_fields():
    inst = _inst()
    sub = inst.select(np.array([2, 0]))
    assert len(sub) == 2 and sub.class_ids.tolist() == [3, 1] and sub.masks.shape == (2, 4, 5)
    assert sub.keypoints.shape == (2, 9, 2) and sub.gt_index.tolist() == [-1, -1]
    assert sub.features is inst.features
    assert len(inst.select(inst.scores > 2)) == 0


def test_lengths_must_agree():
    with pytest.raises(ValueError, match=r"Instances\.masks: expected 2 entries \(one per class id\), got 3"):
        Instances(class_ids=np.array([1, 2]), scores=np.ones(2), masks=np.zeros((3, 4, 4), bool))
    assert Instances(class_ids=np.array([1]), scores=np.ones(1)).masks is None  # detections before masks


def test_the_former_detections_record_is_a_deprecated_alias():
    import demopose.data as data

    with pytest.warns(DeprecationWarning, match="use demopose.data.Instances"):
        det = data.Detections(np.array([1]), np.ones(1), np.zeros((1, 2, 2), bool), np.zeros((1, 4)))
    assert isinstance(det, Instances) and det.boxes.shape == (1, 4)
