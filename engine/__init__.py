"""Retrain Studio's engine: datasets, backbones, bottlenecks, training,
evaluation, export, inference, runs and TensorBoard.

A plain Python package: it never imports Streamlit, and it imports
TensorFlow only inside the functions that need it, so that importing
`engine` (and answering a photo through LiteRT) stays light.
"""

__version__ = "0.1.0"
