"""What a study shows: its Markdown report, its figures, the tables DVC reads, and the
comparison of two studies.

- `text`: the report (title, preamble, figures, params) and the files written beside it;
  `claims`: its sentences; `tables`: its results table; `formatting`: how numbers read.
- `dvc_tables`: summary.json, statistics.json and the dvc plots tables.
- `figures`: the metrics and learning-curve figures, and `render_all`; `mask_figures`:
  the masks and the layer densities; `canvas`: sizes, canvases and atomic PNGs.
- `regenerate`: rewrite a kept study's report from its metrics (`main` is its entry).
- `compare`: two kept studies side by side.
"""
