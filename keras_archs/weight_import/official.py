"""Official ImageNet files: how a variant's are described (:class:`OfficialFile`, listed in
its family's variant table), how they are checked, how they are fetched.

torchvision's file names end in the first hex digits of the file's sha256;
keras.applications' hashes are the md5 sums its own loaders check
(keras/src/applications/*.py). Files are fetched with ``keras.utils.get_file``
into the Keras cache; a file already there is used without any network access.
Offline, the download fails at once (a short connection probe, no long DNS or
HTTP retries) with the URL and the way to pass a local copy instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any

TORCHVISION_URL = "https://download.pytorch.org/models/"
KERAS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
# The display name of each kind of file.
SOURCES = {"torchvision": "torchvision", "keras": "keras.applications"}


@dataclasses.dataclass(frozen=True)
class OfficialFile:
    """One official ImageNet weights file of a variant.

    Attributes:
        kind: who made the file, which is also its layout: ``"torchvision"`` (a state
            dict) or ``"keras"`` (keras.applications' HDF5 file); it selects the
            family's name table and the ``"imagenet:<kind>"`` spelling of ``weights``.
        url: where the file (with the classifier) is.
        file_hash: its full md5/sha256, or ``None`` for torchvision's files, whose name
            ends in the first hex digits of their sha256.
        notop_url, notop_hash: the file without the classifier, for ``include_top=False``
            (keras.applications has one), or ``None``.
        options: the build options a model needs to compute what the file's network
            computes (torchvision's ResNet-50 strides its 3x3 convolutions:
            ``{"downsample": "3x3"}``); ``weights="imagenet"`` applies them.
        preprocessing: the :func:`keras_archs.preprocess_input` mode its weights expect
            (filled in by the registry from the family's table).
    """

    kind: str
    url: str
    file_hash: str | None = None
    notop_url: str | None = None
    notop_hash: str | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    preprocessing: str | None = None

    @property
    def source(self) -> str:
        """``"torchvision"`` or ``"keras.applications"``."""
        return SOURCES.get(self.kind, self.kind)

    @property
    def fname(self) -> str:
        return self.url.rsplit("/", 1)[1]

    def for_top(self, include_top: bool) -> tuple[str, str | None]:
        if include_top or self.notop_url is None:
            return self.url, self.file_hash
        return self.notop_url, self.notop_hash


def torchvision(fname: str, **options: Any) -> OfficialFile:
    """A file of torchvision's model zoo, by its name, and the options it needs.

    Example:
        >>> torchvision("resnet50-0676ba61.pth", downsample="3x3").url
        'https://download.pytorch.org/models/resnet50-0676ba61.pth'
    """
    return OfficialFile("torchvision", TORCHVISION_URL + fname, options=options)


def keras_applications(base_url: str, top_md5: str, notop_md5: str, **options: Any) -> OfficialFile:
    """keras.applications' pair of files ``<base_url>.h5`` and ``<base_url>_notop.h5``,
    with the md5 sums keras' own loaders check (keras/src/applications/*.py).

    Example:
        >>> keras_applications(KERAS_URL + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels", "a", "b").notop_url[-9:]
        '_notop.h5'
    """
    return OfficialFile("keras", f"{base_url}.h5", top_md5, f"{base_url}_notop.h5", notop_md5, options=options)


def keras_home() -> str:
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether the URL's host accepts a TCP connection within ``timeout`` seconds.

    Name resolution ignores socket timeouts, so the probe runs in a daemon thread
    that is abandoned if it takes longer.
    """
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def sha256_prefix_ok(path: str, fname: str) -> bool:
    """torchvision's convention: ``name-<first hex digits of sha256>.pth``."""
    prefix = os.path.splitext(fname)[0].rsplit("-", 1)[-1]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest().startswith(prefix)


def fetch(url: str, file_hash: str | None, *, fail) -> str:
    """Path of the file at ``url`` (cached or downloaded); calls ``fail(message)`` to raise."""
    import keras  # lazily: this module is importable without TensorFlow

    fname = url.rsplit("/", 1)[1]
    cached = os.path.join(keras_home(), "models", fname)
    if not os.path.exists(cached) and not reachable(url):
        fail(
            f"cannot download {url} (no network connection to {urllib.parse.urlsplit(url).hostname}). "
            f"Download it on a connected machine and pass weights='/path/to/{fname}', or copy it to "
            f"{cached}."
        )
    path = keras.utils.get_file(fname, url, cache_dir=keras_home(), cache_subdir="models", file_hash=file_hash)
    if file_hash is None and not sha256_prefix_ok(path, fname):
        fail(f"{path} does not match the sha256 prefix in its name; delete it and retry.")
    return path
