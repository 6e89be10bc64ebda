"""Pretrained backbones: the registry, building their Keras networks (offline
EfficientNet-Lite weights read without torch, keras.applications weight files),
and running them on LiteRT or TensorFlow with the parity check."""
