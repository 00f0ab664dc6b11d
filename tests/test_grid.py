"""grid.image_grid, the one drawer of captcha grids (generator preview, userTest's misreads, the dashboard).

Run: .venv/bin/python -m pytest -q tests/test_grid.py
"""
import numpy as np
import pytest
from PIL import Image

from conftest import tiny_params
from custom_captcha_image import make_generator
from generate_captcha import make_sample, write_preview
from grid import GAP, LINE_HEIGHT, image_grid
from userTest import draw_grid


def captchas(count, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 24, 64, 3), dtype=np.uint8)


def coloured(block, colour):
    """Pixels of `block` (H, W, 3) within 40 of `colour` on every channel."""
    return int((np.abs(block.astype(int) - np.array(colour)).max(axis=2) < 40).sum())


def tile(grid, index, columns, count):
    """(left, tile width) of tile `index` in a grid of `columns` across."""
    across = min(columns, count)
    width = (grid.shape[1] - GAP) // across - GAP
    return GAP + (index % across) * (width + GAP), width


def test_tiles_hold_the_enlarged_images_and_their_coloured_lines():
    images = captchas(5)
    captions = ["ab\nxy", "cd\nzz", "ef\nqq", "gh\nrr", "ij\nss"]
    colours = [((0, 0, 0), (200, 0, 0))] * 4 + [(0, 128, 0)]
    grid = np.asarray(image_grid(images, captions, colours, scale=2, columns=3))
    height = 24 * 2
    tile_height = (grid.shape[0] - GAP) // 2 - GAP
    assert grid.shape[1] > 3 * 128
    for index in range(5):
        left, width = tile(grid, index, 3, 5)
        top = GAP + (index // 3) * (tile_height + GAP)
        centred = left + (width - 128) // 2
        assert np.array_equal(grid[top:top + height:2, centred:centred + 128:2], images[index])
        text = grid[top + height:top + tile_height, left:left + width]
        first, second = text[:LINE_HEIGHT + 2], text[LINE_HEIGHT + 2:]
        if index < 4:
            assert coloured(first, (0, 0, 0)) > 10 and coloured(first, (200, 0, 0)) == 0
            assert coloured(second, (200, 0, 0)) > 10 and coloured(second, (0, 0, 0)) == 0
        else:
            assert coloured(first, (0, 128, 0)) > 10 and coloured(second, (0, 128, 0)) > 10


def test_grey_arrays_and_pil_images_mix_and_bad_input_is_a_clear_error():
    grey = np.full((10, 20), 30, dtype=np.uint8)
    picture = Image.new("RGB", (20, 10), (250, 0, 0))
    grid = np.asarray(image_grid([grey, picture], ["a", "b"], scale=1, columns=2))
    assert (grid == 30).all(axis=2).sum() >= 200 and coloured(grid, (250, 0, 0)) >= 200
    with pytest.raises(ValueError, match="no images"):
        image_grid([], [])
    with pytest.raises(ValueError, match="2 images and 1 captions"):
        image_grid([grey, grey], ["a"])
    with pytest.raises(ValueError, match="uint8"):
        image_grid([grey.astype(np.float32)], ["a"])
    with pytest.raises(ValueError, match="2 lines but 3 colours"):
        image_grid([grey], ["a\nb"], [("black", "red", "blue")])


def test_generator_preview_shows_each_sample_enlarged(tmp_path):
    params = tiny_params(tmp_path, preview_count=7)
    image = np.asarray(Image.open(write_preview(params, columns=5, scale=3)).convert("RGB"))
    generator = make_generator(params)
    for index in (0, 6):
        _, sample = make_sample(generator, params, "preview", index)
        left, width = tile(image, index, 5, 7)
        top = GAP if index < 5 else (image.shape[0] - GAP) // 2 + GAP
        centred = left + (width - 64 * 3) // 2
        assert np.array_equal(image[top:top + 72:3, centred:centred + 192:3], np.asarray(sample.convert("RGB")))


def test_usertest_error_grid_colours_case_slips_orange_and_misreads_red(tmp_path):
    items = [{"image": image, "truth": "aBc1", "prediction": prediction, "right_ignoring_case": ok}
             for image, prediction, ok in zip(captchas(2), ["abc1", "xyz1"], [True, False])]
    draw_grid(items, tmp_path / "errors.png")
    grid = np.asarray(Image.open(tmp_path / "errors.png").convert("RGB"))
    for index, colour in enumerate([(230, 120, 0), (200, 0, 0)]):
        left, width = tile(grid, index, 6, 2)
        text = grid[GAP + 72:, left:left + width]
        assert coloured(text[:LINE_HEIGHT + 2], (0, 0, 0)) > 10  # "truth ..." in black
        assert coloured(text[LINE_HEIGHT + 2:], colour) > 10
