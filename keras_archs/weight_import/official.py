"""The official ImageNet files: where they are, how to check them, how to fetch them.

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

_TORCH = "https://download.pytorch.org/models/"
_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/"


@dataclasses.dataclass(frozen=True)
class OfficialFile:
    kind: str  # "torchvision" or "keras"
    url: str
    file_hash: str | None = None  # full md5/sha256; torchvision's is the name's sha256 prefix
    notop_url: str | None = None
    notop_hash: str | None = None

    @property
    def fname(self) -> str:
        return self.url.rsplit("/", 1)[1]

    def for_top(self, include_top: bool) -> tuple[str, str | None]:
        if include_top or self.notop_url is None:
            return self.url, self.file_hash
        return self.notop_url, self.notop_hash


def _tv(fname: str) -> OfficialFile:
    return OfficialFile("torchvision", _TORCH + fname)


def _keras_resnet(name: str, top: str, notop: str) -> OfficialFile:
    base = f"{_KERAS}resnet/{name}_weights_tf_dim_ordering_tf_kernels"
    return OfficialFile("keras", f"{base}.h5", top, f"{base}_notop.h5", notop)


def _keras_vgg(name: str, top: str, notop: str) -> OfficialFile:
    base = f"{_KERAS}{name}/{name}_weights_tf_dim_ordering_tf_kernels"
    return OfficialFile("keras", f"{base}.h5", top, f"{base}_notop.h5", notop)


# registry name -> official files, preferred first.
OFFICIAL: dict[str, tuple[OfficialFile, ...]] = {
    "alexnet_owt": (_tv("alexnet-owt-7be5be79.pth"),),
    "vgg11": (_tv("vgg11-8a719046.pth"),),
    "vgg11_bn": (_tv("vgg11_bn-6002323d.pth"),),
    "vgg13": (_tv("vgg13-19584684.pth"),),
    "vgg13_bn": (_tv("vgg13_bn-abd245e5.pth"),),
    "vgg16": (
        _tv("vgg16-397923af.pth"),
        _keras_vgg("vgg16", "64373286793e3c8b2b4e3219cbf3544b", "6d6bbae143d832006294945121d1f1fc"),
    ),
    "vgg16_bn": (_tv("vgg16_bn-6c64b313.pth"),),
    "vgg19": (
        _tv("vgg19-dcbb9e9d.pth"),
        _keras_vgg("vgg19", "cbe5617147190e668d6c5d5026f83318", "253f8cb515780f3b799900260a226db6"),
    ),
    "vgg19_bn": (_tv("vgg19_bn-c79401a0.pth"),),
    "resnet18": (_tv("resnet18-f37072fd.pth"),),
    "resnet34": (_tv("resnet34-b627a593.pth"),),
    "resnet50": (
        _tv("resnet50-0676ba61.pth"),
        _keras_resnet("resnet50", "2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
    ),
    "resnet101": (
        _tv("resnet101-63fe2227.pth"),
        _keras_resnet("resnet101", "f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
    ),
    "resnet152": (
        _tv("resnet152-394f9c45.pth"),
        _keras_resnet("resnet152", "100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
    ),
    "resnext50_32x4d": (_tv("resnext50_32x4d-7cdf4587.pth"),),
    "resnext101_32x8d": (_tv("resnext101_32x8d-8ba56ff5.pth"),),
    "resnext101_64x4d": (_tv("resnext101_64x4d-173b62eb.pth"),),
    "wide_resnet50_2": (_tv("wide_resnet50_2-95faca4d.pth"),),
    "wide_resnet101_2": (_tv("wide_resnet101_2-32ee1156.pth"),),
}


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
