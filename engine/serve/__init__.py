"""Using a trained model: its files (LiteRT or TensorFlow), answering photos,
and exporting it (SavedModel, float and int8 TFLite, each scored again)."""
