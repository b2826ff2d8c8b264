"""One module per family, each the one home of everything about its family: the network
(blocks and core builder), the variant table (names, reference counts, official weights
files, training recipe) and the weight-name tables of the reference implementations.

A family module ends with ``FAMILIES``, a tuple of :class:`keras_archs.spec.Family`;
the registry imports every module here the first time it is asked for a model, so a
new family is a new module here, nothing more: no other file lists the families (the
static stub ``keras_archs/__init__.pyi`` is generated from the registry by
``scripts/make_stubs.py``).
"""

from __future__ import annotations

import importlib
import pkgutil

from keras_archs.spec import Family

FAMILY_MODULES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))


def families() -> list[Family]:
    """Import every family module and return the families they declare, in module order.

    Example:
        >>> [f.name for f in families()][:2]
        ['AlexNet', 'BiT']
    """
    return [family for module in FAMILY_MODULES for family in importlib.import_module(f"{__name__}.{module}").FAMILIES]
