"""Importing weights from other implementations: the generic machinery.

* :mod:`.torch_reader` reads ``torch.save`` state dicts without torch (and without
  executing anything from the file);
* :mod:`.keras_reader` reads Keras weight files by layer name;
* :mod:`.reference` is the type of a family's name table (our layer names -> a
  reference implementation's, its BN epsilon, its option checks);
* :mod:`.official` describes and fetches official ImageNet files;
* :mod:`.loader` loads a file into a model, given the variant's spec.

The tables and the official files themselves belong to each family's module
(:mod:`keras_archs.models`); :func:`keras_archs.weights.load_weights` finds them by
registry name.
"""
