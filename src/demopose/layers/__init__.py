"""Network building blocks, one concept per file: kNN, 3D-GC, HS-Pose layers, point-wise MLPs,
the ViT block."""

from demopose.layers.gcn3d import GraphConv, RandomPool, SurfaceConv, neighbor_directions, upsample_nearest
from demopose.layers.hs_layer import HSLayer, HSSurfaceLayer, OutlierRobustGlobal
from demopose.layers.knn import gather_points, knn_indices, nearest_indices
from demopose.layers.mlp import PointMLP, PooledVectorHead
from demopose.layers.vit import ViTBlock

__all__ = [
    "GraphConv",
    "HSLayer",
    "HSSurfaceLayer",
    "OutlierRobustGlobal",
    "PointMLP",
    "PooledVectorHead",
    "RandomPool",
    "SurfaceConv",
    "ViTBlock",
    "gather_points",
    "knn_indices",
    "nearest_indices",
    "neighbor_directions",
    "upsample_nearest",
]
