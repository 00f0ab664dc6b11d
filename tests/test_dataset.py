"""Labelled folders: labels from names or labels.csv, bad files reported and skipped, one decode cache."""
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import tiny_params
from dataset import (Charset, DataError, decode_logits, image_names, label_from_name, load_folder, load_unlabelled,
                     Reading)
from images import preprocess, read_image
from parameters import make_parameters
from generate_captcha import generate_split


@pytest.fixture
def folder(tmp_path):
    params = tiny_params(tmp_path, train_count=60, workers=1)
    generate_split(params, params.train_dir, "train", 60)
    return params


def test_charset_encode_decode_round_trip():
    charset = Charset("0123456789abcXYZ", 4)
    assert charset.decode(charset.encode("a0ZX")) == "a0ZX"
    with pytest.raises(DataError, match="has 3 characters, expected 4"):
        charset.encode("abc")
    with pytest.raises(DataError, match="outside the charset: 'q'"):
        charset.encode("abcq")


def test_fold_case_decoding_adds_both_cases():
    charset = Charset("0oO", 1)
    logits = np.log(np.array([[[0.4, 0.3, 0.3]]]))  # '0' wins alone, but o+O = 0.6 (numpy: no torch needed)
    assert decode_logits(logits, charset)[0] == ["0"]
    texts, confidence = decode_logits(logits, charset, fold_case=True)
    assert texts == ["o"] and confidence[0][0] == pytest.approx(0.6, abs=1e-5)


def test_preprocess_any_mode_and_size():
    for mode in ("L", "1", "RGBA", "P", "RGB"):
        image = Image.new(mode, (100, 30))
        array = preprocess(image, 64, 24)
        assert array.shape == (24, 64, 3) and array.dtype == np.uint8
    transparent = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    assert (preprocess(transparent, 64, 24) == 255).all()  # transparent reads as white paper


def test_corrupt_image_and_wrong_label_are_reported_and_skipped(folder, capsys):
    names = image_names(folder.train_dir)
    open(os.path.join(folder.train_dir, "ab12_999998.jpg"), "wb").write(b"not a jpeg at all")
    good = os.path.join(folder.train_dir, names[0])
    os.link(good, os.path.join(folder.train_dir, "abc_999997.jpg"))  # 3 characters, length is 4
    os.link(good, os.path.join(folder.train_dir, "abqz_999996.jpg"))  # q, z are not in the charset
    image_set = load_folder(folder.train_dir, Reading.of(folder))
    out = capsys.readouterr().out
    assert "3 of 63 files" in out and "skipped" in out
    assert "ab12_999998.jpg: not an image (unrecognised format)" in out
    assert "abc_999997.jpg: label 'abc' has 3 characters, expected 4" in out
    assert "abqz_999996.jpg: label 'abqz' has characters outside the charset" in out
    assert len(image_set) == 60 and image_set.images.shape == (60, 24, 64, 3)
    for name, image in zip(image_set.names, image_set.images):  # each image beside its own name, after the skipped
        assert np.array_equal(image, read_image(os.path.join(folder.train_dir, name), 64, 24)[0])
    again = load_folder(folder.train_dir, Reading.of(folder))  # from the cache: the same report and data
    assert "3 of 63 files" in capsys.readouterr().out
    assert np.array_equal(again.images, image_set.images) and again.labels == image_set.labels
    folder.strict = True
    with pytest.raises(DataError, match="3 of 63 files"):
        load_folder(folder.train_dir, Reading.of(folder))


def test_labels_file_and_cache_invalidation(tmp_path):
    params = tiny_params(tmp_path, workers=1)
    os.makedirs(params.train_dir)
    rows = ["filename,label"]
    for index, label in enumerate(["ab01", "cd23", "ef45"]):
        Image.new("L", (90, 30), 255).save(os.path.join(params.train_dir, f"img{index}.png"))
        rows.append(f"img{index}.png,{label}")
    open(os.path.join(params.train_dir, "labels.csv"), "w").write("\n".join(rows) + "\n")
    first = load_folder(params.train_dir, Reading.of(params))
    assert first.labels == ["ab01", "cd23", "ef45"] and first.images.shape == (3, 24, 64, 3)
    assert Charset.from_params(params).decode(first.targets[1]) == "cd23"
    Image.new("L", (90, 30), 0).save(os.path.join(params.train_dir, "img3.png"))
    open(os.path.join(params.train_dir, "labels.csv"), "a").write("img3.png,ffff\n")
    second = load_folder(params.train_dir, Reading.of(params))
    assert second.labels[-1] == "ffff" and len(second) == 4 and len(os.listdir(params.cache_dir)) == 1


def cache_files(params):
    return sorted(os.listdir(params.cache_dir))


def test_a_folder_cache_replaces_its_older_copies_only(folder, tmp_path):
    load_folder(folder.train_dir, Reading.of(folder))
    [mine] = cache_files(folder)
    other = tiny_params(tmp_path / "other", workers=1, cache_dir=folder.cache_dir)
    generate_split(other, other.train_dir, "train", 20)
    load_folder(other.train_dir, Reading.of(other))
    [theirs] = [name for name in cache_files(folder) if name != mine]
    legacy = os.path.join(folder.cache_dir, "0123456789abcdef0123.npz")  # the naming before names told the folder
    open(legacy, "wb").write(b"an old cache")
    os.remove(os.path.join(folder.train_dir, image_names(folder.train_dir)[0]))
    load_folder(folder.train_dir, Reading.of(folder))
    [newer] = [name for name in cache_files(folder) if name != theirs]
    assert newer != mine and newer.split("-")[0] == mine.split("-")[0] and not os.path.exists(legacy)
    load_folder(folder.train_dir, Reading.of(folder, width=80))  # another reading keeps its own
    assert len(cache_files(folder)) == 3 and {newer, theirs} < set(cache_files(folder))


def test_no_cache_dir_decodes_every_time_and_writes_nothing(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a cache written to '' would land in the working directory
    before = sorted(os.listdir(tmp_path))
    uncached = load_folder(folder.train_dir, Reading.of(folder, cache_dir=""))
    assert sorted(os.listdir(tmp_path)) == before and not os.path.exists(folder.cache_dir)
    cached = load_folder(folder.train_dir, Reading.of(folder))
    assert np.array_equal(uncached.images, cached.images) and uncached.labels == cached.labels == \
        [label_from_name(name) for name in image_names(folder.train_dir)]


@pytest.mark.parametrize("damage", ["truncated", "empty", "bit flipped", "contents changed"])
def test_a_damaged_cache_is_said_in_one_line_and_rebuilt(folder, capsys, damage):
    first = load_folder(folder.train_dir, Reading.of(folder))
    [name] = cache_files(folder)
    path = os.path.join(folder.cache_dir, name)
    data = open(path, "rb").read()
    if damage == "truncated":
        data = data[:len(data) // 2]
    elif damage == "empty":
        data = b""
    elif damage == "bit flipped":  # a bit in the middle of the images
        data = data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 4]) + data[len(data) // 2 + 1:]
    if damage == "contents changed":  # a well-formed file whose images no longer match its checksum
        with np.load(path) as cached:
            arrays = dict(cached)
        arrays["images"][0, 0, 0, 0] ^= 1
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
    else:
        open(path, "wb").write(data)
    capsys.readouterr()
    again = load_folder(folder.train_dir, Reading.of(folder))
    said = [line for line in capsys.readouterr().out.splitlines() if "cache" in line]
    assert len(said) == 1 and said[0].startswith(f"the cache of {folder.train_dir} is damaged"), said
    assert damage != "contents changed" or "checksum does not match" in said[0]
    assert np.array_equal(again.images, first.images) and again.labels == first.labels
    load_folder(folder.train_dir, Reading.of(folder))
    assert "cache" not in capsys.readouterr().out and cache_files(folder) == [name]  # rebuilt whole


def test_an_image_rewritten_with_its_size_and_mtime_kept_is_read_again(tmp_path):
    params = tiny_params(tmp_path, workers=1)
    os.makedirs(params.train_dir)
    path = os.path.join(params.train_dir, "ab01.bmp")  # BMP: the same size whatever the pixels
    Image.new("RGB", (64, 24), "white").save(path)
    assert load_folder(params.train_dir, Reading.of(params)).images.min() == 255
    before = os.stat(path)
    Image.new("RGB", (64, 24), "black").save(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert load_folder(params.train_dir, Reading.of(params)).images.max() == 0


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_folder(str(tmp_path / "nothing"), Reading.of(tiny_params(tmp_path)))


def test_every_image_mode_reads_as_the_picture_a_person_sees():
    """Each Pillow mode of one captcha gives (nearly) the pixels of its 8-bit RGB picture."""
    from generate_captcha import make_sample
    from custom_captcha_image import make_generator
    params = make_parameters({"style": "seed_v1", "render_jitter": ()})
    _, picture = make_sample(make_generator(params), params, "modes", 0)
    grey = picture.convert("L")
    levels = np.asarray(grey, dtype=np.int64)
    expected_grey = preprocess(grey, 64, 24).astype(int)
    with_alpha = picture.convert("RGBA")
    variants = {
        "I;16": (Image.fromarray((levels * 257).astype(np.uint16)), expected_grey),
        "I": (Image.fromarray((levels * 257).astype(np.int32)), expected_grey),
        "F": (Image.fromarray((levels / 255).astype(np.float32)), expected_grey),
        "L": (grey, expected_grey),
        "LA": (grey.convert("LA"), expected_grey),
        "P": (picture.convert("P"), preprocess(picture.convert("P").convert("RGB"), 64, 24).astype(int)),
        "RGBA": (with_alpha, preprocess(picture, 64, 24).astype(int)),
        "CMYK": (picture.convert("CMYK"), preprocess(picture, 64, 24).astype(int)),
        "1": (grey.convert("1"), preprocess(grey.convert("1").convert("L"), 64, 24).astype(int)),
    }
    for mode, (image, expected) in variants.items():
        assert image.mode == mode
        assert np.abs(preprocess(image, 64, 24).astype(int) - expected).max() <= 1, mode
    assert preprocess(variants["I;16"][0], 64, 24).mean() < 250  # not the white page Pillow's convert gives


def test_transparent_parts_read_as_white_paper_and_animations_as_their_first_frame(tmp_path):
    clear = Image.new("RGBA", (64, 24), (0, 0, 0, 0))
    clear.paste((20, 20, 20, 255), (10, 5, 30, 20))
    read = preprocess(clear, 64, 24)
    assert (read[0, 0] == 255).all() and (read[10, 15] == 20).all()
    saved = tmp_path / "transparent.png"
    clear.convert("P").save(saved, transparency=0)  # a palette image whose index 0 is transparent
    with Image.open(saved) as palette:
        assert palette.mode == "P" and "transparency" in palette.info
        assert (preprocess(palette, 64, 24)[0, 0] == 255).all()
    frames = [Image.new("RGB", (64, 24), "white"), Image.new("RGB", (64, 24), "black")]
    path = tmp_path / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with Image.open(path) as animated:
        animated.seek(1)
        assert animated.is_animated and preprocess(animated, 64, 24).min() == 255


def test_broken_links_and_link_loops_are_reported_not_fatal(tmp_path, capsys):
    params = tiny_params(tmp_path)
    folder = tmp_path / "links"
    generate_split(params, str(folder), "train", 5)
    os.symlink(tmp_path / "nowhere.jpg", folder / "abcd_gone.jpg")
    os.symlink(folder / "abcd_loop.jpg", folder / "abcd_loop.jpg")  # a link to itself
    os.symlink(tmp_path / "nowhere.txt", folder / "notes.txt")
    loaded = load_folder(str(folder), Reading.of(params))
    assert len(loaded) == 5
    out = capsys.readouterr().out
    assert "2 of 7 files" in out and "abcd_gone.jpg: cannot read image" in out and "abcd_loop.jpg" in out


def test_labels_file_with_bom_duplicates_and_extra_columns(tmp_path, capsys):
    params = tiny_params(tmp_path)
    folder = tmp_path / "listed"
    generate_split(params, str(folder), "train", 4)
    names = image_names(folder)
    rows = ["filename,label", f"{names[0]},{names[0][:4]}", f"{names[1]},{names[1][:4]}", f"{names[1]},ffff",
            f"{names[2]},{names[2][:4]},extra", f"{names[3]},{names[3][:4]}", f"{names[3]},{names[3][:4]}"]
    (folder / "labels.csv").write_bytes("\ufeff".encode() + "\n".join(rows).encode())
    loaded = load_folder(str(folder), Reading.of(params))
    assert sorted(loaded.names) == [names[0], names[3]]  # a repeated identical row is fine
    out = capsys.readouterr().out
    assert f"listed twice in labels.csv, as '{names[1][:4]}' and 'ffff'" in out
    assert "labels.csv line 5: expected 'filename,label'" in out and "\\ufeff" not in out
    (folder / "labels.csv").write_bytes("filename,label\nx.jpg,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="is not UTF-8 text"):
        load_folder(str(folder), Reading.of(params))


@pytest.mark.slow
def test_a_charset_that_repeats_a_character_is_refused(tmp_path, script):
    with pytest.raises(DataError, match="repeats 'a'"):
        Charset("abca", 4)
    result = script("main.py", "--charset=0123456789aa", f"--train_dir={tmp_path}", f"--test_dir={tmp_path}",
                    "--visdom=false", check=False)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: charset '0123456789aa' repeats 'a': each character is one class"]


def test_subfolders_are_named_in_one_line_and_not_read(folder, capsys):
    names = image_names(folder.train_dir)
    before = len(load_folder(folder.train_dir, Reading.of(folder)))
    for sub in ("more", "older"):
        os.makedirs(os.path.join(folder.train_dir, sub))
        shutil.copy(os.path.join(folder.train_dir, names[0]), os.path.join(folder.train_dir, sub, names[0]))
    capsys.readouterr()
    assert len(load_folder(folder.train_dir, Reading.of(folder))) == before
    [line] = [line for line in capsys.readouterr().out.splitlines() if "subfolder" in line]
    assert line.startswith(f"{folder.train_dir}: 2 subfolders not read (more, older)")
    assert len(load_unlabelled(folder.train_dir, Reading.of(folder))) == before
    assert "2 subfolders not read" in capsys.readouterr().out


def test_fifos_are_listed_and_skipped_not_read(tmp_path, capsys):
    params = tiny_params(tmp_path)
    folder = tmp_path / "fifo"
    generate_split(params, str(folder), "train", 5)
    os.mkfifo(folder / "abcd_999999.png")  # opening it to read would wait for a writer forever
    assert "abcd_999999.png" not in image_names(folder)
    assert len(load_folder(str(folder), Reading.of(params))) == 5
    assert "abcd_999999.png: not a regular file (a FIFO, socket or device): skipped" in capsys.readouterr().out
    assert len(load_unlabelled(str(folder), Reading.of(params))) == 5


def test_a_decompression_bomb_in_a_folder_is_skipped_before_decoding(tmp_path, capsys):
    params = tiny_params(tmp_path)
    folder = tmp_path / "bomb"
    generate_split(params, str(folder), "train", 3)
    Image.new("1", (13000, 13000)).save(folder / "abcd_999999.png")  # a few KB that decode to 169 M pixels
    assert len(load_folder(str(folder), Reading.of(params))) == 3
    assert "abcd_999999.png: image of 13000x13000 pixels is over the limit of 4000000" in capsys.readouterr().out


def test_a_long_problem_list_is_written_in_full_beside_the_run(tmp_path, capsys):
    params = tiny_params(tmp_path)
    folder = tmp_path / "many"
    generate_split(params, str(folder), "train", 3)
    for index in range(16):
        (folder / f"ab{index:02d}_99{index:04d}.png").write_bytes(b"not a png")
    load_folder(str(folder), Reading.of(params))
    out = capsys.readouterr().out
    listing = os.path.join(params.model_dir, "problems_many.txt")
    assert f"... and 6 more (all 16: {listing})" in out
    assert len(open(listing).read().splitlines()) == 16
