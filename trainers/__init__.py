"""Training and evaluation of keras_archs models: data loading, input pipelines, recipes and the loop."""
