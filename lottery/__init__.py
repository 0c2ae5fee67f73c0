"""lottery: a reproducible, auditable study of the Lottery Ticket Hypothesis.

The packages, low to high (each imports only its own or lower ones): `core` (the vocabulary:
architectures, masks, lineage, paths, params, errors, pruning, stopping, datasets and
conditions), `data`, `engine` (TensorFlow), `tracking` (MLflow), `analysis`, `report`, `study`
(one module per DVC stage), `audit`, `bench`, and the `lottery` command (`cli`).
"""
