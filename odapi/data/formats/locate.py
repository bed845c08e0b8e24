"""Finding the image an annotation names, where labelling tools and tutorials put it.

Annotations rarely sit beside their images. LabelImg writes `annotations/x.xml` for
`images/x.jpg`, with `<path>` an absolute path on the labeller's own computer and `<folder>` a
folder name that may exist nowhere here; Pascal VOC has `Annotations/` beside `JPEGImages/`;
tutorial repos keep `data/train_labels.csv` with the images in `../images`. For each
annotation every place below is looked at, in this order; the image is the first file found,
unless another place holds a different file of that name:

1. `--images DIR` (the user's word: it wins outright);
2. the path the annotation names, as given and against the annotation file's folder and the
   dataset root (VOC `<path>` and `<filename>`, COCO `file_name`, a CSV's filename);
3. beside the annotation file;
4. the VOC `<folder>` name inside, beside and above the annotation folder;
5. folders named images, JPEGImages, imgs or img (any case) inside and beside the annotation
   folder, and in the dataset root.

Extensions match whatever their case (`x.JPG` for `x.jpg`), and a name without one (the
tutorial CSV's ids) matches any image extension. Two different files found for one annotation
is an error naming both: picking one would silently pair boxes with the wrong pixels. (Only
then are files compared, byte by byte: copies of one image are fine.) Each folder is listed
once, so the search costs a dictionary lookup per place, not a `stat`.
"""

from __future__ import annotations

import filecmp
import ntpath
import os
from collections import Counter
from pathlib import Path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
IMAGE_FOLDER_NAMES = ("images", "jpegimages", "imgs", "img")


class ImageNotFound(Exception):
    """No place holds the image; the message lists where odapi looked."""


class AmbiguousImage(Exception):
    """Two different files could be the image; the message names both."""


def is_image(path: str | Path) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def base_name(name: str) -> str:
    """The file name of a path written on any system (`C:\\Users\\me\\x.jpg` gives `x.jpg`)."""
    return ntpath.basename(name.replace("\\", "/").rstrip("/")) or name


class ImageLocator:
    """Finds images for one dataset (one input of `odapi convert`) and remembers where."""

    def __init__(self, root: Path, images: Path | None = None):
        self.root = os.path.abspath(root)
        self.images = os.path.abspath(images) if images else None
        self._listings: dict[str, dict[str, list[str]] | None] = {}
        self._image_folders: dict[str, list[str]] = {}
        self.found_in: Counter[tuple[str, str]] = Counter()  # (annotation folder, image folder)

    def find(self, name: str, annotation: Path, recorded: str | None = None,
             folder: str | None = None) -> str:
        """The image `name` that `annotation` describes, as a path string.

        `recorded` is a full path the annotation also gives (VOC `<path>`), `folder` the folder
        name it gives (VOC `<folder>`). Raises ImageNotFound or AmbiguousImage.
        """
        annotation_folder = os.path.dirname(os.path.abspath(annotation))
        if self.images:
            for candidate in dict.fromkeys((name, base_name(name))):
                hits = self._hits(self.images, candidate)
                if hits:
                    return self._found(hits[0], annotation_folder)
        names = [n for n in (name, recorded) if n]
        hits = [hit for where, candidate in self._places(names, annotation_folder, folder)
                for hit in self._hits(where, candidate)]
        distinct = _distinct_files(list(dict.fromkeys(hits)))
        if len(distinct) > 1:
            raise AmbiguousImage(
                f"{name!r} matches two different files, {distinct[0]} and {distinct[1]}; "
                "remove the wrong one, or pass --images DIR to name the folder that holds "
                "the images")
        if not distinct:
            looked = [w for w, _ in self._places(names, annotation_folder, folder)
                      if self._listing(w) is not None]
            shown = ", ".join(dict.fromkeys(looked)) or annotation_folder
            wanted = base_name(name) if is_image(name) else \
                f"{base_name(name)}.jpg (or .png, or another image extension)"
            raise ImageNotFound(
                f"image not found: {wanted}; looked in {shown}. Put the images beside the "
                "annotations or in an images/ folder next to them, or pass --images DIR")
        return self._found(distinct[0], annotation_folder)

    def notes(self) -> list[str]:
        """Where the images were found, a line per annotation folder and image folder."""
        lines = []
        for (annotation_folder, image_folder), count in sorted(self.found_in.items()):
            if annotation_folder == image_folder:
                lines.append(f"{count} image(s) found beside their annotations in "
                             f"{annotation_folder}")
            else:
                lines.append(f"{count} image(s) for the annotations in {annotation_folder} "
                             f"found in {image_folder}")
        return lines

    def _found(self, path: str, annotation_folder: str) -> str:
        self.found_in[(annotation_folder, os.path.dirname(path))] += 1
        return path

    def _places(self, names: list[str], annotation_folder: str, folder: str | None):
        """(folder, name to look for there) in search order; folders may not exist."""
        plain = base_name(names[0])
        for name in names:
            as_path = name.replace("\\", "/")
            if os.path.isabs(as_path):
                yield os.path.split(as_path)
            else:
                for base in (annotation_folder, self.root):
                    yield os.path.split(os.path.normpath(os.path.join(base, as_path)))
        yield annotation_folder, plain
        parent = os.path.dirname(annotation_folder)
        if folder and base_name(folder) not in (".", ".."):
            for base in (annotation_folder, parent, os.path.dirname(parent)):
                yield os.path.join(base, base_name(folder)), plain
        for base in (annotation_folder, parent, self.root):
            for images in self._image_folders_in(base):
                yield images, plain

    def _image_folders_in(self, folder: str) -> list[str]:
        if folder not in self._image_folders:
            listing = self._listing(folder) or {}
            self._image_folders[folder] = [
                os.path.join(folder, actual) for lower in IMAGE_FOLDER_NAMES
                for actual in listing.get(lower, ())
                if os.path.isdir(os.path.join(folder, actual))]
        return self._image_folders[folder]

    def _listing(self, folder: str) -> dict[str, list[str]] | None:
        """The folder's entries by lower-case name; None when it cannot be listed."""
        if folder not in self._listings:
            try:
                entries = os.listdir(folder)
            except OSError:
                self._listings[folder] = None
            else:
                listing: dict[str, list[str]] = {}
                for entry in entries:
                    listing.setdefault(entry.lower(), []).append(entry)
                self._listings[folder] = listing
        return self._listings[folder]

    def _hits(self, folder: str, name: str) -> list[str]:
        """The files in `folder` that `name` can mean, exact spelling first."""
        listing = self._listing(folder)
        if not listing:
            return []
        paths = (os.path.join(folder, actual) for actual in _matches(name, listing))
        return [path for path in paths if not os.path.isdir(path)]  # a folder is no image


def _matches(name: str, listing: dict[str, list[str]]) -> list[str]:
    """Entries that are `name` but for the case of its extension, exact spelling first; a name
    without an image extension matches `name.<any image extension>`."""
    if not name or name in (".", ".."):
        return []
    if is_image(name):
        stem = os.path.splitext(name)[0]
        found = [a for a in listing.get(name.lower(), ()) if os.path.splitext(a)[0] == stem]
        return sorted(found, key=lambda a: a != name)
    return [a for ext in IMAGE_EXTENSIONS for a in listing.get((name + ext).lower(), ())
            if os.path.splitext(a)[0] == name]


def _distinct_files(paths: list[str]) -> list[str]:
    """`paths` without the ones that are another's file again (a link, or the same bytes)."""
    distinct: list[str] = []
    for path in paths:
        if not any(_same_file(path, kept) for kept in distinct):
            distinct.append(path)
    return distinct


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b) or filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False
