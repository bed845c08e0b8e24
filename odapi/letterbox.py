"""An image at a fixed-size model's input the way Model Garden feeds its models: scaled to fit
the input size, its aspect ratio kept (or stretched, where the run's parser says so), by
bilinear interpolation without antialiasing (TensorFlow's `tf.image.resize`, which the model
trained on: PIL's antialiased downscaling cost 0.04 AP50 here), placed top-left on the
(padded) input, the rest filled with the mean pixel (which normalizes to zero, Model Garden's
padding). Boxes found on it map back to the image with `to_image`."""

from __future__ import annotations

import numpy as np

MEAN_PIXEL = (123.675, 116.28, 103.53)  # Model Garden's MEAN_RGB


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """float32 [height, width, C]: TensorFlow 2's bilinear resize (half-pixel centers)."""
    rows, columns = image.shape[:2]
    ys = np.clip((np.arange(height) + 0.5) * (rows / height) - 0.5, 0, rows - 1)
    xs = np.clip((np.arange(width) + 0.5) * (columns / width) - 0.5, 0, columns - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, rows - 1), np.minimum(x0 + 1, columns - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    pixels = image.astype(np.float32)
    top = pixels[y0][:, x0] * (1 - wx) + pixels[y0][:, x1] * wx
    bottom = pixels[y1][:, x0] * (1 - wx) + pixels[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def letterbox(image: np.ndarray, fit: tuple[int, int], canvas_size: tuple[int, int],
              keep_aspect_ratio: bool = True) -> tuple[np.ndarray, tuple[float, float]]:
    """A float32 canvas of pixel values ([*canvas_size, 3]) holding `image` (uint8 RGB)
    resized to fit `fit` (keeping its aspect ratio, or stretched to it as the model was trained
    when not), and the scales applied to its rows and columns (Model Garden's image_scale)."""
    rows, columns = image.shape[:2]
    if keep_aspect_ratio:
        scale = min(fit[0] / rows, fit[1] / columns)
        new_rows, new_columns = max(1, round(rows * scale)), max(1, round(columns * scale))
    else:
        new_rows, new_columns = fit
    canvas = np.empty((*canvas_size, 3), np.float32)
    canvas[:] = MEAN_PIXEL
    canvas[:new_rows, :new_columns] = resize_bilinear(image, new_rows, new_columns)
    return canvas, (new_rows / rows, new_columns / columns)


def to_image(boxes: np.ndarray, image_shape: tuple[int, ...], canvas_shape: tuple[int, ...],
             scales: tuple[float, float]) -> np.ndarray:
    """Boxes normalized to the canvas ([ymin, xmin, ymax, xmax]) as normalized to the image."""
    rows, columns = image_shape[:2]
    height, width = canvas_shape[:2]
    factor = np.array([height / (rows * scales[0]), width / (columns * scales[1])] * 2,
                      np.float32)
    return np.clip(np.asarray(boxes, np.float32).reshape(-1, 4) * factor, 0.0, 1.0)
