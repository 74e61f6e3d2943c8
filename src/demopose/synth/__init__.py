"""Synthetic RGB-D data: procedural meshes, scenes, rendering and NOCS-layout writing."""
