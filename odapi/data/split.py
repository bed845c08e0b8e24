"""Train/val/test splits by image: seeded, and stratified by class where the data allows."""

from __future__ import annotations

import random
import re
from collections import Counter

from odapi.data.annotations import AnnotatedImage
from odapi.errors import OdapiError

DEFAULT_SPLIT = "train"


def parse_split_spec(spec: str) -> dict[str, float]:
    """`train=0.8,val=0.2` -> {"train": 0.8, "val": 0.2}; fractions must add up to 1."""
    fractions: dict[str, float] = {}
    for part in spec.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            fraction = float(value)
        except ValueError:
            fraction = -1.0
        if not sep or not re.fullmatch(r"[A-Za-z0-9_]+", name) or not 0 < fraction <= 1:
            raise OdapiError(f"cannot read {part.strip()!r} in --split {spec!r}; write it like "
                             "train=0.8,val=0.2 (names, and fractions that add up to 1)")
        if name in fractions:
            raise OdapiError(f"split {name!r} appears twice in --split {spec!r}")
        fractions[name] = fraction
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise OdapiError(f"the fractions in --split {spec!r} add up to {total:g}, not 1")
    return fractions


def assign_splits(images: list[AnnotatedImage], fractions: dict[str, float] | None,
                  seed: int = 0) -> list[str]:
    """A split name per image (same order as `images`).

    Without `fractions`, images keep the split their input layout gave them (train otherwise).
    With them: iterative stratification (Sechidis et al., 2011). Classes are taken rarest first;
    each image holding the class goes to the open split (one below its share of images) that
    still needs the most boxes of it, so every split gets its share of images and, as far as the
    images allow, of every class. Images without boxes fill the remaining places. Ties are
    broken by a generator seeded with `seed`.
    """
    if not fractions:
        return [image.split or DEFAULT_SPLIT for image in images]

    rng = random.Random(seed)
    names = list(fractions)
    labels_of = [Counter(box.label for box in image.boxes) for image in images]
    totals: Counter = sum(labels_of, Counter())
    need = {n: {c: fractions[n] * k for c, k in totals.items()} for n in names}
    quota = {n: fractions[n] * len(images) for n in names}
    # a seeded order independent of how the input listed the images
    order = sorted(range(len(images)), key=lambda i: images[i].file)
    rng.shuffle(order)
    result: list[str | None] = [None] * len(images)

    def open_splits() -> list[str]:
        """Splits below their image quota; a full split takes more only when all are full."""
        return [n for n in names if quota[n] > 0] or names

    def place(index: int, name: str) -> None:
        result[index] = name
        quota[name] -= 1
        for label, k in labels_of[index].items():
            need[name][label] -= k

    for label in sorted(totals, key=lambda c: (totals[c], c)):
        for index in order:
            if result[index] is None and label in labels_of[index]:
                place(index, max(open_splits(),
                                 key=lambda n: (need[n][label], quota[n], rng.random())))
    for index in order:
        if result[index] is None:
            place(index, max(open_splits(), key=lambda n: (quota[n], rng.random())))
    return result  # type: ignore[return-value]
