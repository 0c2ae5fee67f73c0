"""The datasets' files: read them strictly and verify their checksums (`checksums`, `idx` for
MNIST and Fashion-MNIST, `cifar` for CIFAR-10), hold a validation set out and save or load
the prepared split (`split`), and do all of it for a dataset named in params (`prepare`).
Which datasets exist, and their shapes, is `lottery.core.datasets`'s catalogue."""
