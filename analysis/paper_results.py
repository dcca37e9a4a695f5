"""The paper's result table (CF-AMC-SSL, arXiv 2501.03507; docs/METHOD.md section 5) as data.

Accuracies are percentages under the standard linear-probe protocol, time is total pre-training
wall-clock in minutes (hardware unverified). Each row names the bundle of
``search_spaces/paper_table.yaml`` that reproduces it (``row``) and the settings a trial is
matched on: the method's parts (objective, adversary, views), the number of crops, the epochs
and, for the free adversary, the replay steps.
"""

from __future__ import annotations

from dataclasses import dataclass

PAPER_SPEC_NAME = "paper_table"  # the spec name whose reports get the comparison
# Measured metric -> the paper's column, for each dataset.
METRICS = ("clean_acc", "robust_acc@4/255", "robust_acc@8/255")


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's table; accuracies in percent per dataset, time in minutes."""

    label: str
    row: str  # the bundle name in search_spaces/paper_table.yaml
    objective: str  # emp | simclr
    adversary: str  # pgd | free
    views: str  # crop | patch
    num_crops: int
    epochs: int
    replay_steps: int | None  # free adversary only
    accuracy: dict[str, tuple[float, float, float]]  # dataset -> (clean, PGD 4/255, PGD 8/255)
    minutes: float

    def key(self) -> tuple[str, str, str]:
        """What a trial is matched on first: (objective, adversary, views)."""
        return (self.objective, self.adversary, self.views)


PAPER_ROWS: tuple[PaperRow, ...] = (
    PaperRow("Patch-based EMP-SSL (baseline)", "patch-emp-ssl-pgd", "emp", "pgd", "patch", 16, 30, None,
             {"cifar10": (61.00, 37.65, 16.95), "cifar100": (39.26, 14.38, 4.22)}, 530),
    PaperRow("Crop-based EMP-SSL (robust EMP-SSL)", "crop-emp-ssl-pgd", "emp", "pgd", "crop", 16, 30, None,
             {"cifar10": (76.55, 53.30, 28.49), "cifar100": (51.71, 33.88, 19.35)}, 530),
    PaperRow("Crop-based SimCLR (baseline)", "crop-simclr-pgd", "simclr", "pgd", "crop", 2, 500, None,
             {"cifar10": (72.86, 47.98, 16.81), "cifar100": (44.57, 19.84, 5.68)}, 934),
    PaperRow("Patch-based SimCLR", "patch-simclr-pgd", "simclr", "pgd", "patch", 2, 500, None,
             {"cifar10": (65.44, 41.85, 17.19), "cifar100": (43.71, 21.87, 8.33)}, 934),
    PaperRow("Patch-based EMP-FreeAdv", "patch-emp-free", "emp", "free", "patch", 16, 10, 3,
             {"cifar10": (61.83, 42.28, 21.53), "cifar100": (40.31, 23.78, 12.13)}, 97),
    PaperRow("Crop-based SimCLR-FreeAdv", "crop-simclr-free", "simclr", "free", "crop", 2, 167, 3,
             {"cifar10": (70.25, 48.34, 24.50), "cifar100": (47.64, 26.53, 11.70)}, 157),
    PaperRow("Crop-based EMP-FreeAdv = CF-AMC-SSL", "cf-amc-ssl", "emp", "free", "crop", 16, 10, 3,
             {"cifar10": (75.88, 55.97, 33.34), "cifar100": (50.74, 31.73, 17.19)}, 97),
)
