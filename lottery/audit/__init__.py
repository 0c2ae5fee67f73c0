"""`lottery audit`: walk each mask of a study back to θ0 and check that its files, dvc.lock
and MLflow agree (`main` runs it; `chain` walks; `dvc`, `mlflow_runs`, `orphans` and
`study` check; `render` writes the text output)."""
