"""Write ``keras_archs/data/imagenet_class_index.json`` from the ImageNet label files timm ships.

keras.applications downloads ``imagenet_class_index.json`` (``{"0": ["n01440764", "tench"],
...}``: each ILSVRC-2012 class index, its WordNet synset and the synset's first lemma with
spaces as underscores). timm installs the same facts offline: ``imagenet_synsets.txt`` (the
1000 synsets in class-index order) and ``imagenet_synset_to_lemma.txt`` (synset -> lemmas).
The file written here is byte for byte keras' own (md5 ``c2c37ea517e94d9795004a39431a14cb``,
the hash keras checks; tests/test_imagenet.py checks it too).

Usage: ``python scripts/make_imagenet_class_index.py``
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

KERAS_MD5 = "c2c37ea517e94d9795004a39431a14cb"
OUT = Path(__file__).resolve().parents[1] / "keras_archs" / "data" / "imagenet_class_index.json"


def class_index(synsets: list[str], lemmas: dict[str, str]) -> dict[str, list[str]]:
    """``{"<index>": [synset, first lemma with underscores]}`` for the synsets in index order.

    Example:
        >>> class_index(["n01440764"], {"n01440764": "tench, Tinca tinca"})
        {'0': ['n01440764', 'tench']}
    """
    return {str(i): [s, lemmas[s].split(",")[0].strip().replace(" ", "_")] for i, s in enumerate(synsets)}


def main() -> None:
    info = resources.files("timm.data") / "_info"
    synsets = info.joinpath("imagenet_synsets.txt").read_text().split()
    lemmas = dict(line.split("\t", 1) for line in info.joinpath("imagenet_synset_to_lemma.txt").read_text().splitlines())
    text = json.dumps(class_index(synsets, lemmas))
    digest = hashlib.md5(text.encode()).hexdigest()
    if len(synsets) != 1000 or digest != KERAS_MD5:
        raise SystemExit(f"{len(synsets)} synsets, md5 {digest}: not keras' imagenet_class_index.json")
    OUT.write_text(text)
    print(f"wrote {OUT} (md5 {digest})")


if __name__ == "__main__":
    main()
