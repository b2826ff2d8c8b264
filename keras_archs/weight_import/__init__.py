"""Importing weights from other implementations: readers, name maps, layout conversion.

* :mod:`.torch_reader` reads ``torch.save`` state dicts without torch (and without
  executing anything from the file);
* :mod:`.keras_reader` reads Keras weight files by layer name;
* :mod:`.families` maps our layer names to torchvision's and keras.applications';
* :mod:`.official` knows the official ImageNet files.

:func:`keras_archs.weights.load_weights` puts them together.
"""
