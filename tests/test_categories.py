import numpy as np
import pytest

from demopose.categories import HOUSECAT6D, NOCS_CAMERA, NOCS_REAL, get_table


def test_nocs_table():
    assert NOCS_REAL.names == ("bottle", "bowl", "camera", "can", "laptop", "mug")
    assert NOCS_REAL["mug"].id == 6 and NOCS_REAL[2].name == "bowl"
    assert NOCS_REAL.is_y_symmetric(1) and NOCS_REAL.is_y_symmetric(2) and NOCS_REAL.is_y_symmetric(4)
    assert not NOCS_REAL.is_y_symmetric(3) and not NOCS_REAL.is_y_symmetric(5)
    assert not NOCS_REAL.is_y_symmetric(6, handle_visible=True)
    assert NOCS_REAL.is_y_symmetric(6, handle_visible=False)
    flags = NOCS_REAL.symmetry_flags(np.array([1, 3, 6, 6]), np.array([1, 0, 1, 0]))
    np.testing.assert_array_equal(flags, [True, False, False, True])
    np.testing.assert_allclose(NOCS_REAL.mean_sizes()[6], [0.146, 0.083, 0.114])
    np.testing.assert_allclose(NOCS_CAMERA["laptop"].mean_size, [0.14525, 0.11125, 0.168])


def test_housecat_and_lookup_errors():
    assert len(HOUSECAT6D) == 10 and HOUSECAT6D["glass"].y_symmetric
    assert get_table("housecat6d") is HOUSECAT6D
    with pytest.raises(KeyError, match="valid ids are 1..6"):
        NOCS_REAL[7]
    with pytest.raises(KeyError, match="no category named"):
        NOCS_REAL["cup"]
    with pytest.raises(KeyError, match="unknown category table"):
        get_table("coco")
    assert 3 in NOCS_REAL and 0 not in NOCS_REAL
