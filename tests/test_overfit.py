"""The overfit check (demopose.benchmark.overfit) in small: gpv_small fits a few fixed instances."""

import numpy as np

from demopose.benchmark.overfit import overfit_pose


def test_gpv_small_fits_a_few_fixed_instances(tiny_synth):
    """8 fixed instances of a tiny generated set, 256 points, 150 Adam steps: the loss falls by an order of
    magnitude and the eval-mode poses of the training instances are close (the full check, 32 instances to
    < 5 deg and < 1 cm, is ``python benchmarks/overfit.py``)."""
    r = overfit_pose("gpv_synth_small", ["data.n_points=256"], data=str(tiny_synth(4, 2)), instances=8, steps=150,
                     precision="fp32")
    assert r.loss_last < r.loss_first / 8
    assert np.median(r.rotation_deg) < 10.0  # untrained: ~45 deg
    assert np.median(r.translation_cm) < 5.0  # untrained: ~20 cm
