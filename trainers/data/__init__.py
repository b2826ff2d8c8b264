"""The data side of training, evaluation, export and prediction.

``datasets`` reads the images (Fashion-MNIST offline, TFDS, a folder), ``pipeline`` turns
them into a run's batched training, validation and test datasets, ``augment`` holds the
papers' training augmentation, ``preprocess`` the one evaluation preprocessing that the eval
pipeline, the exported graphs and prediction share, and ``classes`` the class-name tables.
``preprocess`` and ``classes`` import no TensorFlow at import time (prediction with a
``.tflite`` file runs without it).
"""
