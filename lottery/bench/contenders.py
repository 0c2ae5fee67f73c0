"""The contenders `lottery bench` times, on real MNIST (the project's prepared split, or one
prepared in a temporary directory): the engine with K networks stacked (`EngineRunner`), and
plain Keras 3 `fit` the seed notebook's way, with or without its per-batch masking callback
(`KerasRunner`). Each one's `window` is the seconds of `window` iterations, evaluation
included; every contender trains the same random masks at each density of `DENSITIES`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lottery.bench.config import DENSITIES, BenchConfig
from lottery.core import paths
from lottery.core.arch import LAYER_SHAPES, LAYERS, LENET, glorot_normal_init
from lottery.core.datasets import DataError
from lottery.core.masks import Mask, Weights
from lottery.data.prepare import prepare
from lottery.data.split import Split, load_split

# --------------------------------------------------------------------------- data


@contextlib.contextmanager
def bench_split(lay: paths.Layout) -> Iterator[tuple[Split, Path, str]]:
    """The project's prepared split if present and valid, else one prepared in a temp dir."""
    try:
        split = load_split(lay.prepared_dir())
    except DataError:
        pass
    else:
        yield split, lay.prepared_dir(), str(paths.prepared_dir())
        return
    with tempfile.TemporaryDirectory(prefix="lottery-bench-") as tmp:
        out = Path(tmp) / "data"
        prepare(lay.dataset_dir("mnist"), out, validation_size=5000, stratified=True, seed=0)
        yield load_split(out), out, "prepared in a temporary directory (5,000 validation)"


def _masks(k: int, density: dict[str, float] | None, seed: int) -> list[Mask]:
    """K random LeNet-300-100 masks at per-layer `density` (None: dense)."""
    rng = np.random.default_rng(seed)
    out: list[Mask] = []
    for _ in range(k):
        mask: Mask = {}
        for layer in LAYERS:
            shape = LAYER_SHAPES[layer]
            mask[layer] = (
                np.ones(shape, dtype=bool)
                if density is None
                else rng.random(shape) < density[layer]
            )
        out.append(mask)
    return out


def _inits(k: int, seed: int) -> list[Weights]:
    """K Glorot-normal initialisations of LeNet-300-100."""
    return [glorot_normal_init(np.random.default_rng([seed, i]), LENET) for i in range(k)]


def _overall_density(mask: Mask) -> float:
    """The fraction of a mask's weights kept, over all layers."""
    return float(sum(m.sum() for m in mask.values()) / sum(m.size for m in mask.values()))


# --------------------------------------------------------------------------- contenders


class EngineRunner:
    """The project's engine with K stacked networks, as a stage uses it (`Engine.train`)."""

    def __init__(self, split: Split, k: int, cfg: BenchConfig) -> None:
        from lottery.engine.training import Engine, TrainConfig

        self.k = k
        self.cfg = cfg
        # The test set evaluated at every evaluation: the per-call costs of both sets.
        self.engine = Engine(
            split,
            k,
            TrainConfig(
                cfg.window,
                cfg.batch_size,
                cfg.learning_rate,
                cfg.eval_every,
                test_every=cfg.eval_every,
            ),
            LENET,
        )
        self.inits = _inits(k, seed=1)
        self.seeds = list(range(k))
        self.masks = {name: _masks(k, d, seed=2) for name, d in DENSITIES.items()}
        self.density = {name: _overall_density(m[0]) for name, m in self.masks.items()}

    def warm_up(self) -> None:
        """Compile the train chunk and both evaluations."""
        self.window("d100")

    def window(self, density: str) -> float:
        """Seconds for one `Engine.train` call of `window` iterations (evaluation included)."""
        start = time.perf_counter()
        self.engine.train(self.inits, self.masks[density], self.seeds, progress=lambda _: None)
        return time.perf_counter() - start

    def window_split(self) -> dict[str, float]:
        """Seconds of one 100%-density window by part (train, val, test), timed call by
        call inside the engine, and the number of evaluations."""
        self.window("d100")
        return dict(self.engine.timings)


class NotebookMask:
    """The seed notebook's callback: after every batch, `set_weights(kernel * mask)`."""

    def __init__(self, masks: list[np.ndarray]) -> None:
        import keras

        class _Callback(keras.callbacks.Callback):
            def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
                for layer, mask in zip(self.model.layers, masks, strict=True):
                    kernel, bias = layer.get_weights()
                    layer.set_weights([kernel * mask, bias])

        self.callback = _Callback()


class KerasRunner:
    """Plain Keras 3 `fit` (the notebook's way), optionally with the masking callback."""

    def __init__(self, split: Split, cfg: BenchConfig, masked: bool) -> None:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import keras

        self.cfg = cfg
        self.masked = masked
        self.x = split.x_train
        self.y = split.y_train
        n_val = min(cfg.keras_val_size, split.x_test.shape[0])
        self.val = (split.x_test[:n_val].astype(np.float32) / 255.0, split.y_test[:n_val])
        self.model = keras.Sequential(
            [
                keras.Input((self.x.shape[1],)),
                keras.layers.Dense(300, activation="relu", kernel_initializer="glorot_normal"),
                keras.layers.Dense(100, activation="relu", kernel_initializer="glorot_normal"),
                keras.layers.Dense(10, activation="softmax", kernel_initializer="glorot_normal"),
            ]
        )
        self.model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=cfg.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        self.masks = {
            name: [m[layer].astype(np.float32) for layer in LAYERS]
            for name, (m,) in ((n, _masks(1, d, seed=2)) for n, d in DENSITIES.items())
        }
        self.rng = np.random.default_rng(3)

    def _batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The notebook's shuffling batch generator (endless epochs of permutations)."""
        b = self.cfg.batch_size
        while True:
            perm = self.rng.permutation(self.x.shape[0])
            for i in range(0, perm.size - b + 1, b):
                j = perm[i : i + b]
                yield self.x[j].astype(np.float32) / 255.0, self.y[j]

    def _fit(self, iterations: int, density: str) -> None:
        callbacks = [NotebookMask(self.masks[density]).callback] if self.masked else []
        self.model.fit(
            self._batches(),
            steps_per_epoch=self.cfg.eval_every,
            epochs=max(1, iterations // self.cfg.eval_every),
            validation_data=self.val,
            callbacks=callbacks,
            verbose=0,
        )

    def warm_up(self) -> None:
        """Build and compile the model (one epoch)."""
        self._fit(self.cfg.eval_every, "d100")

    def window(self, density: str) -> float:
        """Seconds for `fit` over `window` iterations (validation included)."""
        start = time.perf_counter()
        self._fit(self.cfg.window, density)
        return time.perf_counter() - start
