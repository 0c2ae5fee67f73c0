"""Everything MLflow: where the tracking store is and a client that waits out its outages,
every store error as one line (`store`); the study's experiment and parent run (`parents`);
a stage's child runs, their params, tags, datasets and artifacts, and the runs a failing
stage leaves open (`recorder`); learning curves buffered through an outage (`curves`); who
owns a RUNNING run and the orphan sweep (`owners`); the watchdog process that marks a
killed stage's runs FAILED (`watchdog`); and what a run records about its origin (`context`).
It imports `core` only, plus MLflow; nothing here trains, analyses or reports.
"""
