"""LeNet-300-100: the layer names and shapes every other module agrees on.

Pure Python (no TensorFlow import) so masks, pruning and audits stay cheap to load.
"""

from __future__ import annotations

#: Prunable layers in forward order: name -> kernel shape (fan_in, fan_out).
LAYER_SHAPES: dict[str, tuple[int, int]] = {
    "fc1": (784, 300),
    "fc2": (300, 100),
    "out": (100, 10),
}
LAYERS: tuple[str, ...] = tuple(LAYER_SHAPES)
N_INPUTS = 784
N_CLASSES = 10
#: 266,200 prunable kernel weights; biases are never pruned.
N_PRUNABLE = sum(a * b for a, b in LAYER_SHAPES.values())


def kernel_key(layer: str) -> str:
    return f"{layer}/kernel"


def bias_key(layer: str) -> str:
    return f"{layer}/bias"


def weight_shapes() -> dict[str, tuple[int, ...]]:
    """Shapes of every array in a weights file: `fc1/kernel`, `fc1/bias`, ..."""
    shapes: dict[str, tuple[int, ...]] = {}
    for layer, (fan_in, fan_out) in LAYER_SHAPES.items():
        shapes[kernel_key(layer)] = (fan_in, fan_out)
        shapes[bias_key(layer)] = (fan_out,)
    return shapes
