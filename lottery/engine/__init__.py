"""The TensorFlow training engine: K masked networks trained side by side in one compiled
step (`training.Engine`), MLP and Conv-2/4/6 stacks (`mlp`, `conv`), what a run is told and
returns (`config`), one training call's bookkeeping (`run`), the compiled stacks a process lends
from one `Engine` to the next (`stacks`), and XLA's persistent compilation cache
(`compile_cache`). It imports `core` and `data` only; nothing here knows
DVC or MLflow.
"""
