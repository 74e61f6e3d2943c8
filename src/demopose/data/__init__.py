"""Datasets: the frame record and readers for the NOCS, HouseCat6D and synthetic layouts."""

from demopose.data.frame import Frame

__all__ = ["Frame"]
