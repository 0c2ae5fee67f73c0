"""The study's DVC stages as library functions, one module per stage: `prepare` (prepare and
init), `train` (dense, ticket, reinit and random rounds, with `nets` and `outputs`),
`visualise` and `report`, plus `entry.stage_main`, the stage scripts' entry point. Each stage
module imports only what its stage runs, so dvc.yaml's code deps (its import closure) stay
narrow: a reworded report sentence stales the report stage, not the training.
"""
