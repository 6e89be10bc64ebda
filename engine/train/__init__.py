"""Training a head: the settings (TrainConfig), bottleneck features and their
cache, the head and its fit, augmentation, the step loop and its events,
TensorBoard summaries, evaluation, and the orchestration of a run."""
