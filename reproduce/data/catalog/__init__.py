"""The dataset catalog: every dataset the papers use, where it comes from and how it is checked.

``base`` defines an entry and the ``DATASETS`` registry; each family module registers its
entries when imported, and this package imports them all.
"""

from .base import DATASETS, IMAGENET_MEAN, IMAGENET_STD, ArchiveFile, DatasetInfo
from .cifar import (CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, CIFAR10C_CORRUPTIONS, CIFAR10C_SEVERITIES,
                    CIFAR100_CLASSES)
from .fullres import CALTECH256_TOTAL, CALTECH256_VAL, FULLRES_TRANSFORMS, IMAGENET200_WNIDS
from .imagenet import IMGNET_SPLIT_SEED
from . import toy  # noqa: F401  (registers toy3d)

__all__ = [
    "CALTECH256_TOTAL", "CALTECH256_VAL", "CIFAR100_CLASSES", "CIFAR10C_CORRUPTIONS", "CIFAR10C_SEVERITIES",
    "CIFAR10_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD", "DATASETS", "FULLRES_TRANSFORMS", "IMAGENET200_WNIDS",
    "IMAGENET_MEAN", "IMAGENET_STD", "IMGNET_SPLIT_SEED", "ArchiveFile", "DatasetInfo",
]
