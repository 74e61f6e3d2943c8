"""AP-versus-threshold plots like Fig. 7 of the NOCS paper (Wang et al., CVPR 2019): 3D IoU, rotation
(at 100 cm) and translation (at 360°), one curve per category plus the mean, labelled with the IoU mode.
"""

from __future__ import annotations

import os
from pathlib import Path

from demopose.evaluation.summary import NOCSMetrics
from demopose.io import atomic_path

__all__ = ["plot_ap_curves", "pyplot", "save_png"]


def pyplot():
    """``matplotlib.pyplot`` on the file-only ``Agg`` backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Lay out ``fig`` and write it as a PNG at ``path`` atomically; returns the path. The caller closes it."""
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return path


def plot_ap_curves(result: NOCSMetrics, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Draw the three AP panels of one IoU mode into a PNG at ``path`` (written atomically).

    Absent categories (no ground truth) are not drawn. Returns the path.
    """
    plt = pyplot()
    names = [*result.category_names, "mean"]
    panels = [("3D IoU", result.iou_curves(), "3D IoU threshold", (0, 1)),
              ("Rotation", result.rotation_curves(), "rotation threshold (degrees)", None),
              ("Translation", result.translation_curves(), "translation threshold (cm)", None)]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    try:
        for ax, (title, (x, ap), xlabel, xlim) in zip(axes, panels):
            for name, row in zip(names, ap):
                if name != "mean" and not result.present[names.index(name)]:
                    continue
                mean = name == "mean"
                ax.plot(x, 100 * row, label=name, color="black" if mean else None,
                        linewidth=2.2 if mean else 1.4, linestyle="--" if mean else "-")
            ax.set_title(f"{title} (IoU mode: {result.iou_mode})")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("AP (%)")
            ax.set_ylim(0, 102)
            ax.set_xlim(*(xlim or (x[0], x[-1])))
            ax.grid(alpha=0.3)
        axes[0].legend(loc="lower left", fontsize=8)
        return save_png(fig, path, dpi)
    finally:
        plt.close(fig)
