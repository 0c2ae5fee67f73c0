"""A study's results as numbers: files read, censoring, cells and their statistics.

- `results`: the one import for a notebook and the report modules (it gathers the names
  of the modules below); `frames`: the metrics and curves files as dicts and DataFrames;
  `legacy`: files written by older versions, read in today's schema.
- `censoring`: when an early stop is a lower bound; `patience`: the patience evidence,
  and the censoring window it sets (its `main` is `lottery patience`).
- `cells`: statistics per (condition, round) over trial means, paired differences, series;
  `statistics`: intervals, tests, Holm, bootstrap shares.
- `inference`: the report's facts (`compute_summary`); `picks`: the best and the
  earliest-stopping ticket.
- `protocol` and `comparison`: two studies' params diff, protocol check and rows paired by
  % of weights remaining (rendered by `lottery.report.compare`).
"""
