"""Datasets: the frame record, the dataset registry and the readers of the NOCS, HouseCat6D and synthetic layouts
and of the user's own frames (each reader registers itself, :mod:`demopose.data.registry`)."""

from demopose.data.frame import Frame
from demopose.data.frame_instances import Instances
from demopose.data.housecat6d import HouseCat6DDataset, load_housecat6d_frame
from demopose.data.nocs import NOCSDataset, load_frame
from demopose.data.registry import DatasetReader, FrameRef, detect, get_reader, list_readers, register_reader

__all__ = ["DatasetReader", "Frame", "FrameRef", "HouseCat6DDataset", "Instances", "NOCSDataset", "detect",
           "get_reader", "list_readers", "load_frame", "load_housecat6d_frame", "register_reader"]


def __getattr__(name: str):  # noqa: ANN202
    if name == "Detections":  # deprecated alias of Instances, one release
        from demopose.data import detections

        return detections.Detections
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
