"""The study's vocabulary, shared by every other package: architectures (`arch`), masks and
weights files (`masks`), lineage sidecars (`lineage`), file layout (`paths`), validated params
(`params`), errors and how entry points end (`errors`), atomic writes (`io`), magnitude
pruning (`pruning`), the early-stopping rule (`stopping`), the dataset catalogue (`datasets`)
and the conditions (`conditions`). It imports nothing from the rest of the project, and loads
no TensorFlow, MLflow, matplotlib or pandas, so every stage can afford it.
"""
