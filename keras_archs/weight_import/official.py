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


def _keras_densenet(depth: int, top: str, notop: str) -> OfficialFile:
    base = f"{_KERAS}densenet/densenet{depth}_weights_tf_dim_ordering_tf_kernels"
    return OfficialFile("keras", f"{base}.h5", top, f"{base}_notop.h5", notop)


def _keras_efficientnet(variant: str, top: str, notop: str) -> OfficialFile:
    # keras/src/applications/efficientnet.py: BASE_WEIGHTS_PATH + "efficientnetb0" + ".h5" / "_notop.h5"
    base = f"https://storage.googleapis.com/keras-applications/efficientnet{variant}"
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
    "squeezenet1_0": (_tv("squeezenet1_0-b66bff10.pth"),),
    "squeezenet1_1": (_tv("squeezenet1_1-b8a52dc0.pth"),),
    "densenet121": (
        _tv("densenet121-a639ec97.pth"),
        _keras_densenet(121, "9d60b8095a5708f2dcce2bca79d332c7", "30ee3e1110167f948a6b9946edeeb738"),
    ),
    "densenet161": (_tv("densenet161-8d451a50.pth"),),
    "densenet169": (
        _tv("densenet169-b2777c0a.pth"),
        _keras_densenet(169, "d699b8f76981ab1b30698df4c175e90b", "b8c4d4c20dd625c148057b9ff1c1176b"),
    ),
    "densenet201": (
        _tv("densenet201-c1103571.pth"),
        _keras_densenet(201, "1ceb130c1ea1b78c3bf6114dbdfd8807", "c13680b51ded0fb44dff2d8f86ac8bb1"),
    ),
    # mnasnet0_5's official file predates torchvision's MNASNet "version 2" (scaled stem) and
    # may not fit our version-2 builder: not registered (see notes/weights.md).
    "mnasnet0_75": (_tv("mnasnet0_75-7090bc5f.pth"),),
    "mnasnet1_0": (_tv("mnasnet1.0_top1_73.512-f206786ef8.pth"),),
    "mnasnet1_3": (_tv("mnasnet1_3-a4c69d6f.pth"),),
    "shufflenet_v2_x0_5": (_tv("shufflenetv2_x0.5-f707e7126e.pth"),),
    "shufflenet_v2_x1_0": (_tv("shufflenetv2_x1-5666bf0f80.pth"),),
    "shufflenet_v2_x1_5": (_tv("shufflenetv2_x1_5-3c479a10.pth"),),
    "shufflenet_v2_x2_0": (_tv("shufflenetv2_x2_0-8be3c8ee.pth"),),
    "googlenet_bn": (_tv("googlenet-1378be20.pth"),),
    "inception_v3": (
        _tv("inception_v3_google-0cc3c7bd.pth"),
        OfficialFile(
            "keras",
            f"{_KERAS}inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
            "9a0d58056eeedaa3f26cb7ebd46da564",
            f"{_KERAS}inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "bcbd6486424b2319ff4ef7d526e38f63",
        ),
    ),
    # torchvision's DEFAULT weights; keras.applications' files (the authors' TF checkpoints).
    "efficientnet_b0": (
        _tv("efficientnet_b0_rwightman-7f5810bc.pth"),
        _keras_efficientnet("b0", "902e53a9f72be733fc0bcb005b3ebbac", "50bc09e76180e00e4465e1a485ddc09d"),
    ),
    "efficientnet_b1": (
        _tv("efficientnet_b1-c27df63c.pth"),
        _keras_efficientnet("b1", "1d254153d4ab51201f1646940f018540", "74c4e6b3e1f6a1eea24c589628592432"),
    ),
    "efficientnet_b2": (
        _tv("efficientnet_b2_rwightman-c35c1473.pth"),
        _keras_efficientnet("b2", "b15cce36ff4dcbd00b6dd88e7857a6ad", "111f8e2ac8aa800a7a99e3239f7bfb39"),
    ),
    "efficientnet_b3": (
        _tv("efficientnet_b3_rwightman-b3899882.pth"),
        _keras_efficientnet("b3", "ffd1fdc53d0ce67064dc6a9c7960ede0", "af6d107764bb5b1abb91932881670226"),
    ),
    "efficientnet_b4": (
        _tv("efficientnet_b4_rwightman-23ab8bcd.pth"),
        _keras_efficientnet("b4", "18c95ad55216b8f92d7e70b3a046e2fc", "ebc24e6d6c33eaebbd558eafbeedf1ba"),
    ),
    "efficientnet_b5": (
        _tv("efficientnet_b5_lukemelas-1a07897c.pth"),
        _keras_efficientnet("b5", "ace28f2a6363774853a83a0b21b9421a", "38879255a25d3c92d5e44e04ae6cec6f"),
    ),
    "efficientnet_b6": (
        _tv("efficientnet_b6_lukemelas-24a108a5.pth"),
        _keras_efficientnet("b6", "165f6e37dce68623721b423839de8be5", "9ecce42647a20130c1f39a5d4cb75743"),
    ),
    "efficientnet_b7": (
        _tv("efficientnet_b7_lukemelas-c5b4e57e.pth"),
        _keras_efficientnet("b7", "8c03f828fec3ef71311cd463b6759d99", "cbcfe4450ddf6f3ad90b1b398090fe4a"),
    ),
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
