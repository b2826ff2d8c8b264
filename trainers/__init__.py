"""Training, evaluation, export and prediction of keras_archs models.

The commands (``python -m trainers.<name>``): ``run`` trains or evaluates, ``export`` writes
SavedModel/TFLite files with a model card, ``predict`` classifies images, ``prune`` prunes
a trained model; ``cli`` holds their shared convention (exit codes, one-line errors).
Training itself: ``recipes`` (the papers' recipes), ``loop`` (the training loop),
``distribute``, ``precision``, ``outputs`` (a run's files) and ``models`` (what is read off
a Keras model). ``data/`` holds datasets, augmentation and the one evaluation preprocessing;
``deploy/`` the export, TFLite, prediction and pruning code behind the commands.
"""
