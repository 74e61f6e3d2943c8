"""Datasets: the frame record and readers for the NOCS, HouseCat6D and synthetic layouts."""

from demopose.data.detections import Detections
from demopose.data.frame import Frame
from demopose.data.housecat6d import HouseCat6DDataset, load_housecat6d_frame
from demopose.data.nocs import NOCSDataset, load_frame

__all__ = ["Detections", "Frame", "HouseCat6DDataset", "NOCSDataset", "load_frame", "load_housecat6d_frame"]
