"""The bottom layer: what every other layer leans on, and nothing else.

Errors a user can act on, where files go, progress bars, atomic writes and
the one file lock, process helpers, and the run folder (the contract between
the trainer, the exporter, the predictor and the job runner).
"""
