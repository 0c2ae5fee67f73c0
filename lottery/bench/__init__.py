"""`lottery bench`: the training engine measured side by side with plain Keras (network-
iterations per second, evaluation share, stage start-up, the Conv-2 and stack lines) and the
wall-clock estimate of the paper preset under its protocol, set against a kept study's
measured wall-clock where one exists. `main` runs it; each other module owns one part:
config, contenders, startup, measure, derive, profile, estimate, render, conv and stack.
"""
