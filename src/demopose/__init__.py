"""demopose: category-level 9-DoF object pose estimation from RGB-D images."""

__version__ = "0.1.0"
