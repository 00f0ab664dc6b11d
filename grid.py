"""One picture of many captchas: each enlarged in its own tile with coloured caption lines under it.

The generator's preview (generate_captcha.write_preview), userTest's grid of misreads and the
dashboard's predictions panel all draw with image_grid.
"""
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_SIZE = 14
LINE_HEIGHT = 17  # pixels per caption line at FONT_SIZE
GAP = 6  # pixels between tiles and around the grid
BLACK = (0, 0, 0)


def _picture(image):
    """A PIL RGB image from a PIL image or a uint8 array (H, W) or (H, W, 3|4)."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"image_grid expects uint8 images, got {array.dtype}")
    if array.ndim == 3:
        array = array[..., :3]
    return Image.fromarray(array).convert("RGB")


def _lines(caption, colour):
    """[(text, colour)] of one caption: its lines, each in its own colour or all in one."""
    texts = str(caption).split("\n")
    if colour is None:
        colours = [BLACK] * len(texts)
    elif isinstance(colour, (list, tuple)) and colour and not isinstance(colour[0], int):
        colours = list(colour)
    else:
        colours = [colour] * len(texts)
    if len(colours) != len(texts):
        raise ValueError(f"caption {caption!r} has {len(texts)} lines but {len(colours)} colours")
    return list(zip(texts, colours))


def image_grid(images, captions, colours=None, scale=3, columns=6):
    """A PIL RGB grid: images in rows of `columns`, each enlarged `scale` times, its caption under it.

    captions: one string an image; "\\n" starts another line.
    colours: None (all black), or one an image: a colour (name or RGB tuple) for the whole caption,
    or a list with one colour a line.
    """
    pictures = [_picture(image) for image in images]
    if not pictures:
        raise ValueError("image_grid got no images")
    if len(captions) != len(pictures):
        raise ValueError(f"image_grid got {len(pictures)} images and {len(captions)} captions")
    colours = [None] * len(pictures) if colours is None else list(colours)
    if len(colours) != len(pictures):
        raise ValueError(f"image_grid got {len(pictures)} images and {len(colours)} colours")
    font = ImageFont.load_default(size=FONT_SIZE)
    lines = [_lines(caption, colour) for caption, colour in zip(captions, colours)]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_width = max(measure.textlength(text, font=font) for caption in lines for text, _ in caption)
    picture_height = max(picture.height for picture in pictures) * scale
    tile_width = max(max(picture.width for picture in pictures) * scale, math.ceil(text_width) + 2)
    tile_height = picture_height + LINE_HEIGHT * max(len(caption) for caption in lines) + 2
    columns = max(1, min(columns, len(pictures)))
    rows = math.ceil(len(pictures) / columns)
    grid = Image.new("RGB", (columns * (tile_width + GAP) + GAP, rows * (tile_height + GAP) + GAP), "white")
    draw = ImageDraw.Draw(grid)
    for index, (picture, caption) in enumerate(zip(pictures, lines)):
        left = GAP + (index % columns) * (tile_width + GAP)
        top = GAP + (index // columns) * (tile_height + GAP)
        size = (picture.width * scale, picture.height * scale)
        # Nearest neighbour: the pixels the model sees, only bigger.
        grid.paste(picture.resize(size, Image.Resampling.NEAREST), (left + (tile_width - size[0]) // 2, top))
        for number, (text, colour) in enumerate(caption):
            draw.text((left + 1, top + picture_height + 2 + number * LINE_HEIGHT), text, fill=colour, font=font)
    return grid
