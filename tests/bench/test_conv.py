"""The Conv-2 line of `lottery bench` (its figures are checked on the bench run of
tests/bench/test_bench.py): the engines it times are real Conv-2 stacks on 32×32×3."""

from __future__ import annotations

from lottery.bench import conv as bench_conv


def test_each_network_of_the_stack_has_its_own_half_density_masks() -> None:
    net = bench_conv.arch.build("conv2", (32, 32, 3))
    engine = bench_conv.engine_for(bench_conv.random_split(net, n_train=60), net, 2)
    masks = [layer.mask.numpy() for layer in engine.model.layers]
    for m in masks:
        assert m.shape[0] == 2 and not (m[0] == m[1]).all()
        assert 0.45 < m.mean() < 0.55
