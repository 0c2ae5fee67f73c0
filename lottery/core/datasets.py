"""The dataset catalogue: the datasets `data.dataset` can name, their image shapes and set sizes.

Reading, checking and splitting their files is `lottery.data`'s job; this module is the part
that params validation and every other layer may know without loading any data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lottery.core.errors import UserError

MNIST_SHAPE = (28, 28, 1)
CIFAR_SHAPE = (32, 32, 3)


class DataError(UserError, ValueError):
    """A data file is missing, corrupt or inconsistent (the message says which and how to fix)."""


@dataclass(frozen=True)
class Dataset:
    """A dataset `data.dataset` can name: its image shape and official set sizes."""

    name: str
    image_shape: tuple[int, int, int]  # (height, width, channels)
    n_train: int  # examples in the official training set (validation is held out of it)
    n_test: int
    format: Literal["idx", "cifar-bin"]

    @property
    def directory(self) -> Path:
        """Where its files live, relative to the project root: `data/<name>`."""
        return Path("data") / self.name


DATASETS: dict[str, Dataset] = {
    "mnist": Dataset("mnist", MNIST_SHAPE, 60_000, 10_000, "idx"),
    "fashion-mnist": Dataset("fashion-mnist", MNIST_SHAPE, 60_000, 10_000, "idx"),
    "cifar10": Dataset("cifar10", CIFAR_SHAPE, 50_000, 10_000, "cifar-bin"),
}


def dataset_info(name: str) -> Dataset:
    """The `Dataset` called `name` (DataError naming the known ones otherwise)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}.")
    return DATASETS[name]
