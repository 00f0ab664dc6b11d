"""Self-training: a model reads captchas of a 'site' whose labels were removed; its confident reads join
training and are read again every round as it improves."""
import csv
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, tiny_params
from dataset import Charset, image_names, load_folder, load_unlabelled, Reading, score
from generate_captcha import generate_split
from images import moved
from model import load_checkpoint, measure_batch_norms, model_from_checkpoint
from predictor import load_model
from self_training import aligned, confident_reads, kept_reads
from test_train import interrupt, resumed_as_printed
from train import train

# A plain look the tiny model learns in seconds; the site draws it rotated and with dots it never saw.
EASY = {"charset": "0123456789", "rotation": 0.0, "warp_x": (0.0, 0.0), "warp_y": (0.0, 0.0), "noise_curves": 0,
        "noise_dots": 0, "threads": 1}
SITE = {**EASY, "rotation": 8.0, "noise_dots": 8}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A model trained on the plain look, and 600 captchas of the site: with labels (site/, for scoring only)
    and without (unlabelled/, opaque names)."""
    root = tmp_path_factory.mktemp("self")
    base = tiny_params(root, **EASY, epochs=30)
    generate_split(base, base.train_dir, "train", 1200)
    generate_split(base, base.test_dir, "test", 100)
    generate_split(tiny_params(root, **SITE), str(root / "site"), "site", 600)
    (root / "unlabelled").mkdir()
    for index, name in enumerate(image_names(root / "site")):
        shutil.copy(root / "site" / name, root / "unlabelled" / f"img{index:04d}.jpg")
    train(base)
    return root


def self_training(root, model_dir, **overrides):
    settings = {**EASY, "epochs": 4, "init_from": f"{root}/model/last.pt", "lr": 0.002, "warmup": 0.1, "augment": "on",
                "model_dir": str(model_dir), "unlabelled_dir": f"{root}/unlabelled", "pseudo_threshold": 0.8,
                "unlabelled_fraction": 0.5}
    return tiny_params(root, **{**settings, **overrides})


def site_accuracy(root, model_dir):
    predictor = load_model(os.path.join(model_dir, "last.pt"))
    captchas = load_folder(str(root / "site"), Reading.of(tiny_params(root, **EASY)), quiet=True)
    return score(predictor.logits(captchas.images), captchas.labels, predictor.charset)[0]["accuracy"]


def self_training_rows(model_dir):
    with open(os.path.join(model_dir, "log.csv"), newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["pseudo_used"]]


@pytest.mark.slow
def test_self_training_raises_accuracy_on_the_unlabelled_site(site, capsys):
    before = site_accuracy(site, site / "model")
    train(self_training(site, site / "adapted"))
    after = site_accuracy(site, site / "adapted")
    assert after > before + 0.2, (before, after)
    rows = self_training_rows(site / "adapted")
    assert len(rows) >= 4 and int(rows[-1]["pseudo_used"]) > int(rows[0]["pseudo_used"])  # it reads more as it learns
    out = capsys.readouterr().out
    assert "self-training round 4:" in out and "self-training read none" not in out
    saved = load_checkpoint(str(site / "adapted" / "last.pt"))["progress"]
    assert saved["pseudo_targets"].shape == (600, 4) and int(saved["pseudo_used"].sum()) == int(rows[-1]["pseudo_used"])


def test_only_reads_above_the_threshold_and_alike_on_every_view_are_used():
    # (views 2, captchas 3, length 1, classes 2): sure and alike; alike but unsure; sure on average, views differ
    probabilities = torch.tensor([[[[0.95, 0.05]], [[0.6, 0.4]], [[0.45, 0.55]]],
                                  [[[0.97, 0.03]], [[0.6, 0.4]], [[1.0, 0.0]]]])
    charset = Charset("AB", 1)
    targets, used = confident_reads(probabilities, charset, 0.7)
    assert targets.flatten().tolist() == [0, -1, -1] and used.tolist() == [True, False, False]  # -1: not used
    assert confident_reads(probabilities, charset, 0.5)[1].tolist() == [True, True, False]


def test_the_surest_plain_reads_join_where_they_read_the_same_moved():
    # (views 2, captchas 4, length 1, classes 2): the plain read is sure of captcha 2, then 0, then 3, then 1;
    # the augmented view reads each otherwise, so no read is alike on both views
    plain = torch.tensor([[[0.8, 0.2]], [[0.55, 0.45]], [[0.05, 0.95]], [[0.3, 0.7]]])
    probabilities = torch.stack([plain, plain.flip(-1)])
    charset = Charset("AB", 1)
    assert not confident_reads(probabilities, charset, 0.5)[1].any()
    # moved either way, captchas 0, 1 and 3 read as the plain read does, captcha 2 the other way
    steady = torch.stack([plain, plain])
    steady[:, 2] = plain[2].flip(-1)
    targets, used = confident_reads(probabilities, charset, 0.5, surest=0.5, moved_probabilities=steady)
    assert used.tolist() == [True, False, False, False] and targets.flatten().tolist() == [0, -1, -1, -1]
    assert confident_reads(probabilities, charset, 0.5, 0.75, steady)[1].tolist() == [True, False, False, True]
    assert confident_reads(probabilities, charset, 0.5, 1.0, steady)[1].tolist() == [True, True, False, True]
    assert not confident_reads(probabilities, charset, 0.5, 0.0, steady)[1].any()  # off: the views alone
    # a move that reads one captcha otherwise keeps it out, whatever the other move reads
    one_way = steady.clone()
    one_way[1, 0] = plain[0].flip(-1)
    assert confident_reads(probabilities, charset, 0.5, 0.75, one_way)[1].tolist() == [False, False, False, True]
    # reads alike on every view and sure enough are used whatever the share
    alike = torch.stack([plain, plain])
    assert confident_reads(alike, charset, 0.9, 0.5, steady)[1].tolist() == [True, False, True, False]


def test_kept_reads_stay_until_read_confidently_otherwise():
    # four captchas (length 2): used before and now alike; used before, unsure now; used before, now read as
    # something else; new now
    old_targets = torch.tensor([[0, 1], [1, 1], [0, 0], [-1, -1]])
    old_used = torch.tensor([True, True, True, False])
    targets = torch.tensor([[0, 1], [-1, -1], [1, 0], [1, 0]])
    used = torch.tensor([True, False, True, True])
    kept, kept_used = kept_reads(targets, used, old_targets, old_used)
    assert kept.tolist() == [[0, 1], [1, 1], [1, 0], [1, 0]] and kept_used.tolist() == [True, True, True, True]
    nothing_before = kept_reads(targets, used, torch.full((4, 2), -1), torch.zeros(4, dtype=torch.bool))
    assert nothing_before[0].tolist() == targets.tolist() and nothing_before[1].tolist() == used.tolist()


def test_alignment_gives_an_under_read_class_its_share():
    # (1 view, 4 captchas, length 1, classes A and B): trained on A and B alike, the model reads three in four
    # as A; the least sure A read goes to B, and the mean moves towards the training shares.
    probabilities = torch.tensor([[[[0.9, 0.1]], [[0.6, 0.4]], [[0.55, 0.45]], [[0.2, 0.8]]]])
    shares = torch.tensor([0.5, 0.5])
    after = aligned(probabilities, shares)
    assert probabilities.argmax(-1).flatten().tolist() == [0, 0, 0, 1]
    assert after.argmax(-1).flatten().tolist() == [0, 0, 1, 1]
    assert torch.allclose(after.sum(-1), torch.ones(1, 4, 1))
    before_gap = (probabilities.mean(dim=(0, 1, 2)) - shares).abs().sum()
    assert (after.mean(dim=(0, 1, 2)) - shares).abs().sum() < before_gap
    assert torch.allclose(aligned(after * 0 + 0.5, shares), after * 0 + 0.5)  # reads at the shares stay as they are


@pytest.mark.slow
def test_a_threshold_no_read_reaches_uses_none_and_says_so(site, capsys):
    train(self_training(site, site / "strict", pseudo_threshold=1.0, epochs=1))
    assert {row["pseudo_used"] for row in self_training_rows(site / "strict")} == {"0"}
    assert "warning: self-training read none of the" in capsys.readouterr().out


@pytest.mark.slow
def test_the_surest_share_trains_on_steady_reads_where_no_read_reaches_the_threshold(site):
    train(self_training(site, site / "surest", pseudo_threshold=1.0, pseudo_surest=0.3, epochs=1))
    used = [int(row["pseudo_used"]) for row in self_training_rows(site / "surest")]
    assert used and all(0 < count <= 180 for count in used), used  # at most 0.3 of 600, the steady ones


def test_moved_images_repeat_their_edge_columns_or_fill_the_gap():
    images = np.arange(2 * 3 * 5 * 3, dtype=np.uint8).reshape(2, 3, 5, 3)  # (N, H, W, C)
    right, left = moved(images, 2), moved(images, -2)
    assert right.shape == left.shape == images.shape
    assert (right[:, :, 2:] == images[:, :, :-2]).all() and (right[:, :, :2] == images[:, :, :1]).all()
    assert (left[:, :, :-2] == images[:, :, 2:]).all() and (left[:, :, -2:] == images[:, :, -1:]).all()
    assert moved(images, 0) is images
    white = moved(images, -2, fill=255)
    assert (white[:, :, :-2] == images[:, :, 2:]).all() and (white[:, :, -2:] == 255).all()
    assert (moved(images, 2, fill=255)[:, :, :2] == 255).all()


def self_training_command(root, model_dir):
    """main.py's command line of a short self-training run, each setting spelt out as a user would."""
    settings = self_training(root, model_dir, epochs=3, eval_epochs=3, workers=1)
    keys = ("train_dir", "test_dir", "model_dir", "cache_dir", "unlabelled_dir", "init_from", "epochs", "eval_epochs",
            "lr", "warmup", "augment", "pseudo_threshold", "unlabelled_fraction", "threads", "workers", "batch_size",
            "label_smoothing", "dropout", "visdom", "charset", "rotation", "warp_x", "warp_y", "noise_curves",
            "noise_dots", "stem_channels", "stem_stride", "stage_channels", "stage_blocks", "style", "render_jitter")
    return [sys.executable, os.path.join(ROOT, "main.py")] + [f"--{key}={shown(getattr(settings, key))}" for key in keys]


def shown(value):
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


@pytest.mark.slow
def test_interrupted_self_training_resumes_with_its_reads(site):
    straight, broken = site / "straight", site / "broken"
    subprocess.run(self_training_command(site, straight), check=True, capture_output=True, timeout=300)
    code, output = interrupt(self_training_command(site, broken), broken / "log.csv", signal.SIGINT, rows=4)
    assert code == 130, output
    saved = load_checkpoint(str(broken / "last.pt"))["progress"]
    assert saved["pseudo_round"] >= 1 and saved["pseudo_targets"] is not None
    resumed = resumed_as_printed(output)
    assert resumed.returncode == 0, resumed.stderr
    done, expected = load_checkpoint(str(broken / "last.pt")), load_checkpoint(str(straight / "last.pt"))
    assert done["progress"]["pseudo_round"] == expected["progress"]["pseudo_round"] == 3
    assert torch.equal(done["progress"]["pseudo_targets"], expected["progress"]["pseudo_targets"])
    assert torch.equal(done["progress"]["pseudo_used"], expected["progress"]["pseudo_used"])
    for key, value in expected["model"].items():
        assert torch.equal(done["model"][key], value), key


def batch_norm_means(model_dir):
    state = load_checkpoint(str(model_dir / "last.pt"))["model"]
    return {key: value for key, value in state.items() if key.endswith("running_mean")}


@pytest.mark.slow
def test_target_batch_norm_saves_the_statistics_of_the_site_and_reads_it_no_worse(site):
    """AdaBN: the saved model's batch-norm statistics are those of the site's captchas (measured again
    from the saved weights, they stay the same), not of the training batches."""
    train(self_training(site, site / "adabn", epochs=1, target_batch_norm=True))
    train(self_training(site, site / "plain", epochs=1))
    adapted, plain = batch_norm_means(site / "adabn"), batch_norm_means(site / "plain")
    assert any(not torch.allclose(adapted[key], plain[key]) for key in adapted)
    predictor_model = model_from_checkpoint(load_checkpoint(str(site / "adabn" / "last.pt")))
    unlabelled = load_unlabelled(str(site / "unlabelled"), Reading.of(tiny_params(site, **EASY)))
    measure_batch_norms(predictor_model, "cpu", unlabelled.images, self_training(site, site / "adabn").eval_batch_size)
    for key, value in predictor_model.state_dict().items():
        if key.endswith("running_mean"):
            assert torch.allclose(value, adapted[key], rtol=1e-3, atol=1e-4), key
    assert site_accuracy(site, site / "adabn") >= site_accuracy(site, site / "plain") - 0.05
