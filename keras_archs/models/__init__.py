"""One module per family. Importing this package imports every family module,
which registers its variants; a new family is a new module here, nothing more."""

import importlib
import pkgutil

FAMILY_MODULES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))

for _module in FAMILY_MODULES:
    importlib.import_module(f"{__name__}.{_module}")
