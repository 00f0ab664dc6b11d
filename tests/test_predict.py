"""userTest.py and userPred.py run as a user runs them, with the tiny trained model.

userTest reports both accuracies and writes its grid and JSON report, and says what to do about an
empty golden set; userPred reads files, folders and stdin, prints JSON on request, reports bad files
without a traceback, and reads the same text as the API (one path from bytes to text).
"""
import base64
import csv
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from api_demo import create_app
from conftest import tiny_params
from dataset import image_names
from generate_captcha import generate_split
from parameters import make_parameters
from errors import ProjectError
from images import ImageError
from predictor import Reader, load_model, predict
from test_api import post_json, running_server

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sample_files(tiny_run, count):
    folder = tiny_run["params"].test_dir
    return [os.path.join(folder, name) for name in image_names(folder)[:count]]


def user_pred(tiny_run, *args, stdin=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "userPred.py"), f"--checkpoint={tiny_run['checkpoint']}",
                           *args], input=stdin, capture_output=True, timeout=120)


@pytest.mark.slow
def test_user_test_reports_accuracies_confusions_grid_and_json(tiny_run, tmp_path, script):
    folder = tiny_run["params"].test_dir
    result = script("userTest.py", f"--checkpoint={tiny_run['checkpoint']}", f"--golden_dir={folder}",
                    f"--cache_dir={tmp_path / 'cache'}", f"--report_dir={tmp_path / 'report'}")
    out = result.stdout
    sensitive = float(re.search(r"accuracy: ([\d.]+) case-sensitive", out).group(1))
    insensitive = float(re.search(r"([\d.]+) case-insensitive", out).group(1))
    assert re.search(r"per-character accuracy: [\d.]+", out) and "confusions (truth->prediction): " in out
    grid = re.search(r"mispredicted captchas: (\S+)", out).group(1)
    report_path = re.search(r"report: (\S+)", out).group(1)
    with Image.open(grid) as image:
        assert image.format == "PNG" and image.size[0] > 6 * 64
    with open(report_path) as handle:
        report = json.load(handle)
    count = len(image_names(folder))
    assert report["count"] == count and report["skipped"] == 0
    assert report["correct"] + len(report["wrong"]) == count
    assert report["metrics"]["accuracy"] == pytest.approx(sensitive, abs=1e-4)
    assert report["correct"] / count == pytest.approx(sensitive, abs=1e-4)
    assert report["correct_ignore_case"] / count == pytest.approx(insensitive, abs=1e-4)
    assert 0 < len(report["confusions"]) <= 15
    assert [pair["count"] for pair in report["confusions"]] == sorted((p["count"] for p in report["confusions"]),
                                                                       reverse=True)
    wrong = report["wrong"][:5]
    assert all(item["truth"] != item["prediction"] and len(item["confidences"]) == 4 for item in wrong)
    # The evaluation reads exactly what a prediction of the same file reads.
    predictor = load_model(tiny_run["checkpoint"])
    read = predict(predictor, [open(os.path.join(folder, item["file"]), "rb").read() for item in wrong])
    assert [r["text"] for r in read] == [item["prediction"] for item in wrong]


@pytest.mark.slow
def test_user_test_lists_sure_misreads_as_labels_to_check(tiny_run, tmp_path, script):
    source = tiny_run["params"].test_dir
    names = image_names(source)
    predictor = load_model(tiny_run["checkpoint"])
    read = predict(predictor, [open(os.path.join(source, name), "rb").read() for name in names])
    right = sorted(((min(r["confidences"]), name, r["text"]) for name, r in zip(names, read)
                    if r["text"] == name.split("_")[0]), reverse=True)
    assert right, "the tiny model reads no test captcha"
    sure, mislabelled, text = right[0]  # its surest right read, given a label with every character wrong
    threshold = f"{sure - 1e-3:.6f}"
    golden = tmp_path / "golden"
    golden.mkdir()
    for name in names:
        shutil.copy(os.path.join(source, name), golden / name)
    wrong_label = "".join("0" if char != "0" else "1" for char in text)
    os.rename(golden / mislabelled, golden / f"{wrong_label}_typo.jpg")
    result = script("userTest.py", f"--checkpoint={tiny_run['checkpoint']}", f"--golden_dir={golden}",
                    f"--cache_dir={tmp_path / 'cache'}", f"--report_dir={tmp_path / 'report'}",
                    f"--sure_confidence={threshold}")
    assert f"{wrong_label}_typo.jpg (labelled {wrong_label}, read {text})" in result.stdout
    assert "check their labels" in result.stdout
    with open(tmp_path / "report" / "golden_report.json") as handle:
        wrong = json.load(handle)["wrong"]
    assert len(wrong) > 1 and f"{wrong_label}_typo.jpg" in [item["file"] for item in wrong[:5]]
    assert [min(item["confidences"]) for item in wrong] == sorted((min(i["confidences"]) for i in wrong), reverse=True)


@pytest.mark.slow
def test_user_test_reads_a_labels_csv_golden_set(tiny_run, tmp_path, script):
    golden = tmp_path / "golden"
    golden.mkdir()
    shutil.copy(os.path.join(ROOT, "golden_set", "README.md"), golden / "README.md")
    rows = [["filename", "label"]]
    for index, path in enumerate(sample_files(tiny_run, 20)):
        shutil.copy(path, golden / f"shot_{index:02d}.jpg")
        rows.append([f"shot_{index:02d}.jpg", os.path.basename(path).split("_")[0]])
    shutil.copy(path, golden / "shot_99.jpg")
    rows.append(["shot_99.jpg", "zzzz"])  # outside the charset: reported and skipped
    with open(golden / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    result = script("userTest.py", f"--checkpoint={tiny_run['checkpoint']}", f"--golden_dir={golden}",
                    f"--cache_dir={tmp_path / 'cache'}", f"--report_dir={tmp_path / 'report'}")
    assert "golden: scored 20 of 21 images (1 could not be, listed above)" in result.stdout
    assert "shot_99.jpg" in result.stdout
    with open(tmp_path / "report" / "golden_report.json") as handle:
        report = json.load(handle)
    assert report["images"] == 21 and report["count"] == 20 and report["skipped"] == 1


@pytest.mark.slow
def test_user_test_gives_no_folder_accuracy_when_most_images_cannot_be_scored(tiny_run, tmp_path, script):
    golden = tmp_path / "golden"
    other_site = tiny_params(tmp_path, charset="GHJKMNPQRSTUVWXY")  # another charset than the checkpoint's
    generate_split(other_site, str(golden), "other", 37)
    for path in sample_files(tiny_run, 3):  # and 3 captchas the checkpoint reads
        shutil.copy(path, golden)
    result = script("userTest.py", f"--checkpoint={tiny_run['checkpoint']}", f"--golden_dir={golden}",
                    f"--cache_dir={tmp_path / 'cache'}", f"--report_dir={tmp_path / 'report'}", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: only 3 of the 40 images in {golden} could be scored") and "0123456789abcdef" in line
    assert "37 of 40 files" in result.stdout and "accuracy" not in result.stdout
    assert not (tmp_path / "report").exists()
    for path in sample_files(tiny_run, 3):
        os.remove(golden / os.path.basename(path))
    result = script("userTest.py", f"--checkpoint={tiny_run['checkpoint']}", f"--golden_dir={golden}",
                    f"--cache_dir={tmp_path / 'cache'}", check=False)
    assert result.returncode == 2 and result.stderr.startswith(f"error: only 0 of the 37 images in {golden}")


@pytest.mark.slow
def test_user_test_ends_non_zero_below_min_accuracy(tiny_run, tmp_path, script):
    golden = tmp_path / "golden"
    generate_split(tiny_params(tmp_path, style="captcha_default", image_width=64, image_height=24), str(golden),
                   "other", 20)  # the checkpoint's charset and length in another style: it reads few of them
    args = (f"--checkpoint={tiny_run['checkpoint']}", f"--golden_dir={golden}", f"--cache_dir={tmp_path / 'cache'}")
    read = float(re.search(r"([\d.]+) case-insensitive", script("userTest.py", *args).stdout).group(1))
    assert read < 0.9
    result = script("userTest.py", *args, "--min_accuracy=0.9", check=False)
    assert result.returncode == 1 and "accuracy" in result.stdout  # the scores, then why it failed
    [line] = result.stderr.strip().splitlines()
    assert line == (f"error: the model reads {read:.4f} of {golden} (case-insensitive), below --min_accuracy=0.9: it "
                    f"has not learnt these captchas (a run too short says so in its last lines; or they differ from its training "
                    f"set); train it longer: python main.py --resume "
                    f"--model_dir={os.path.dirname(tiny_run['checkpoint'])} --extend=10")
    assert script("userTest.py", *args, f"--min_accuracy={read}").returncode == 0


@pytest.mark.slow
def test_empty_or_missing_golden_set_says_what_to_do(tiny_run, tmp_path, script):
    empty = tmp_path / "golden_set"
    empty.mkdir()
    shutil.copy(os.path.join(ROOT, "golden_set", "README.md"), empty / "README.md")
    for folder in (empty, tmp_path / "missing"):
        result = script("userTest.py", f"--checkpoint={tiny_run['checkpoint']}", f"--golden_dir={folder}",
                        f"--cache_dir={tmp_path / 'cache'}", check=False)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.startswith("error:") and result.stderr.strip().count("\n") == 0
        assert "LABEL.jpg" in result.stderr and "golden_set/README.md" in result.stderr


@pytest.mark.slow
def test_user_pred_reads_a_file_and_a_folder(tiny_run, tmp_path):
    files = sample_files(tiny_run, 4)
    folder = tmp_path / "shots"
    folder.mkdir()
    for path in files[1:]:
        shutil.copy(path, folder)
    result = user_pred(tiny_run, files[0], str(folder))
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 4 and lines[0].startswith(files[0] + ": ")
    for line in lines:
        match = re.search(r": (\S{4})(?:  \(ignoring case, each letter's two cases summed: (\S{4})\))?  "
                          r"confidences((?: [\d.]+){4})  [\d.]+ ms(  UNSURE)?$", line)
        assert match, line
        assert match.group(2) != match.group(1).lower()  # shown only where it is not the text's lower case
        assert all(0 < float(c) <= 1 for c in match.group(3).split())
    assert "warning" not in result.stderr.decode()  # the model's own size


@pytest.mark.slow
def test_user_pred_warns_once_of_images_far_from_the_models_size(tiny_run, tmp_path):
    files = sample_files(tiny_run, 2)
    large = []
    for number, path in enumerate(files):  # another site's captchas: 130x52, read by a 64x24 model
        large.append(str(tmp_path / f"site{number}.png"))
        Image.open(path).resize((130, 52)).save(large[-1])
    result = user_pred(tiny_run, files[0], *large)
    assert result.returncode == 0 and len(result.stdout.decode().splitlines()) == 3
    assert result.stderr.decode().splitlines() == [
        "warning: 130x52 images are far from the 64x24 this model was trained on: are they the captchas of another "
        "site? Its reads of them are likely wrong; train a model on them (README: your own labelled captchas)"]


@pytest.mark.slow
def test_user_pred_reads_stdin_as_json_and_matches_the_api(tiny_run, tmp_path):
    files = sample_files(tiny_run, 5)
    image = open(files[0], "rb").read()
    result = user_pred(tiny_run, "--json", "-", stdin=image)
    assert result.returncode == 0, result.stderr.decode()
    [item] = json.loads(result.stdout)
    assert item["file"] == "-" and len(item["text"]) == 4 and len(item["confidences"]) == 4
    assert item["text_ignore_case"] == item["text"].lower() and item["ms"] > 0

    folder = tmp_path / "shots"
    folder.mkdir()
    for path in files:
        shutil.copy(path, folder)
    result = user_pred(tiny_run, "--json", str(folder))
    texts = [entry["text"] for entry in json.loads(result.stdout)]
    assert texts[0] == item["text"]
    app = create_app(make_parameters({"checkpoint": tiny_run["checkpoint"]}))
    with running_server(app) as port:
        served = [post_json(port, {"image": "data:image/jpeg;base64," + base64.b64encode(open(path, "rb").read())
                                   .decode()})[1]["prediction"] for path in files]
    assert served == texts


@pytest.mark.slow
def test_user_pred_reports_bad_files_without_a_traceback(tiny_run, tmp_path):
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("these are notes, not a captcha")
    good = sample_files(tiny_run, 1)[0]
    result = user_pred(tiny_run, str(not_an_image), str(tmp_path / "missing.png"), good)
    stderr = result.stderr.decode()
    assert result.returncode == 1 and "Traceback" not in stderr
    assert f"{not_an_image}: error: not an image" in stderr and "missing.png: error: no such file" in stderr
    assert result.stdout.decode().startswith(good + ": ")
    result = user_pred(tiny_run, "--json", str(not_an_image))
    assert result.returncode == 1 and json.loads(result.stdout)[0]["error"].startswith("not an image")


ONNX_SERVING = """
import http.client, json, sys, threading
import waitress
from api_demo import create_app
from parameters import make_parameters
from predictor import Reader, load_model, predict
params = make_parameters({"backend": "onnx", "checkpoint": sys.argv[1]})
files = sys.argv[2:]
texts = [result["text"] for result in predict(load_model(params=params), [open(f, "rb").read() for f in files])]
reader = Reader(sys.argv[1].replace(".pt", ".onnx"))
read = [reader.read(f)["text"] for f in files]
server = waitress.create_server(create_app(params), host="127.0.0.1", port=0)
threading.Thread(target=server.run, daemon=True).start()
connection = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=30)
connection.request("POST", "/predict", open(files[0], "rb").read(), {"Content-Type": "image/jpeg"})
served = json.loads(connection.getresponse().read())["prediction"]
torch = sorted(name for name in sys.modules if name.split(".")[0] == "torch")
print(json.dumps({"texts": texts, "read": read, "served": served, "torch": torch,
                  "onnxruntime": "onnxruntime" in sys.modules}))
"""


def test_onnx_prediction_and_serving_import_no_torch(tiny_run, tmp_path):
    from export_onnx import export
    checkpoint = tmp_path / "best.pt"
    shutil.copy(tiny_run["checkpoint"], checkpoint)
    export(str(checkpoint), ddddocr=False)
    files = sample_files(tiny_run, 6)
    images = [open(path, "rb").read() for path in files]
    expected = [result["text"] for result in predict(load_model(str(checkpoint)), images)]
    result = subprocess.run([sys.executable, "-c", ONNX_SERVING, str(checkpoint), *files], capture_output=True,
                            text=True, timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["onnxruntime"] and report["torch"] == []
    assert report["texts"] == report["read"] == expected and report["served"] == expected[0]


def test_a_reader_reads_paths_bytes_pil_images_and_arrays_alike(tiny_run):
    path = sample_files(tiny_run, 1)[0]
    image = Image.open(path).convert("RGB")
    reader = Reader(tiny_run["checkpoint"], unsure_below=0.5)
    results = [reader.read(kind) for kind in (path, open(path, "rb").read(), image, np.asarray(image))]
    assert all(result == results[0] for result in results) and len(results[0]["text"]) == 4
    assert [result["text"] for result in reader.read_many([path, image])] == [results[0]["text"]] * 2
    with pytest.raises(ImageError):
        reader.read(b"not an image")


def test_an_onnx_model_whose_metadata_charset_disagrees_with_its_output_is_refused(tiny_run, tmp_path):
    import onnx
    from export_onnx import METADATA_KEY, export
    checkpoint = tmp_path / "best.pt"
    shutil.copy(tiny_run["checkpoint"], checkpoint)
    exported = export(str(checkpoint), ddddocr=False)["onnx"]
    graph = onnx.load(exported)
    [entry] = [entry for entry in graph.metadata_props if entry.key == METADATA_KEY]
    metadata = json.loads(entry.value)
    entry.value = json.dumps({**metadata, "charset": metadata["charset"][:-1]})  # one class fewer than the output
    onnx.save(graph, str(tmp_path / "edited.onnx"))
    with pytest.raises(ProjectError, match="reads 4 steps of 16 classes, its metadata says 4 of 15"):
        load_model(params=make_parameters({"backend": "onnx", "checkpoint": str(tmp_path / "edited.onnx")}))


@pytest.mark.slow
def test_user_pred_into_a_closed_pipe_ends_quietly(tiny_run):
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "userPred.py"),
                                f"--checkpoint={tiny_run['checkpoint']}", tiny_run["params"].test_dir],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # as `| head` once it has its lines
    errors = process.stderr.read().decode()
    process.wait(120)
    assert errors == "" and process.returncode == 1


@pytest.mark.slow
def test_unsure_reads_are_marked_by_the_setting(tiny_run, tmp_path):
    files = sample_files(tiny_run, 6)
    marks = {}
    for below in ("0", "1.01"):
        result = user_pred(tiny_run, f"--unsure_below={below}", "--json", *files)
        assert result.returncode == 0, result.stderr.decode()
        marks[below] = [item["unsure"] for item in json.loads(result.stdout)]
    assert marks == {"0": [False] * 6, "1.01": [True] * 6}
    predictor = load_model(tiny_run["checkpoint"], make_parameters({"unsure_below": 0.9}))
    for result in predict(predictor, [Image.open(path) for path in files]):
        assert result["unsure"] == (min(result["confidences_ignore_case"]) < 0.9)
    printed = user_pred(tiny_run, "--unsure_below=1.01", files[0]).stdout.decode()
    assert printed.rstrip().endswith("ms  UNSURE")


@pytest.mark.slow
def test_user_test_lists_the_least_sure_reads_of_an_unlabelled_folder(tiny_run, tmp_path, script):
    folder = tmp_path / "site"
    folder.mkdir()
    for index, path in enumerate(sample_files(tiny_run, 30)):
        shutil.copy(path, folder / f"shot{index:03d}.jpg")  # no labels: the names say nothing
    result = script("userTest.py", f"--checkpoint={tiny_run['checkpoint']}", f"--golden_dir={folder}",
                    "--least_sure=8", f"--cache_dir={tmp_path / 'cache'}", f"--report_dir={tmp_path / 'report'}")
    assert "the 8 least sure of 30 reads" in result.stdout
    rows = (tmp_path / "report" / "site_least_sure.tsv").read_text().splitlines()[1:]
    assert len(rows) == 8
    confidences = [float(row.split("\t")[2]) for row in rows]
    assert confidences == sorted(confidences)
    predictor = load_model(tiny_run["checkpoint"])
    everything = predict(predictor, [(folder / name).read_bytes() for name in image_names(folder)])
    assert max(confidences) <= sorted(min(r["confidences_ignore_case"]) for r in everything)[8] + 1e-4
    labelled = script("userTest.py", f"--checkpoint={tiny_run['checkpoint']}", f"--golden_dir={tiny_run['params'].test_dir}",
                      f"--cache_dir={tmp_path / 'cache'}", f"--report_dir={tmp_path / 'report'}", "--unsure_below=1.01")
    assert "200 of 200 reads unsure" in labelled.stdout


def test_webp_size_is_read_before_pillow_opens_it():
    """Pillow's WebP reader takes a full-size canvas when it opens a file: userPred reads the size from the
    WebP's first chunk (lossy, lossless, extended) and refuses one over max_pixels before that."""
    import io

    from images import ImageError, image_size, open_image, webp_size

    def webp(size, mode="RGB", **options):
        buffer = io.BytesIO()
        frames = [Image.new(mode, size, color) for color in ("white", "black")]
        frames[0].save(buffer, format="WEBP", append_images=frames[1:], **options)
        return buffer.getvalue()

    for size in ((1, 1), (64, 24), (777, 13), (16383, 2)):
        for data in (webp(size, lossless=True), webp(size, quality=80), webp(size, "RGBA", quality=80),
                     webp(size, save_all=True)):
            assert webp_size(data) == image_size(data) == Image.open(io.BytesIO(data)).size == size
    assert webp_size(b"\x89PNG\r\n\x1a\n") is None and webp_size(b"") is None
    big = webp((2000, 2000), lossless=True)
    for read in (image_size, open_image):
        with pytest.raises(ImageError) as refused:
            read(big, 3_999_999)
        assert refused.value.status == 413 and "2000x2000" in str(refused.value)
    with pytest.raises(ImageError, match="WebP whose size"):
        image_size(big[:24])
    assert open_image(big, 4_000_000).size == (2000, 2000)
