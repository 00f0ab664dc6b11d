"""Evaluate a checkpoint on hand-labelled captchas of the target site (the golden set).

    python userTest.py                                      # golden_set/ with model_dir/best.pt
    python userTest.py --checkpoint=runs/big/best.pt --golden_dir=my_site_captchas
    python userTest.py --golden_dir=data/captcha/test       # any labelled folder works
    python userTest.py --golden_dir=site_captchas --least_sure=50   # the 50 reads to label first (no labels needed)

Prints whole-captcha accuracy case-sensitive and case-insensitive (what most sites check), an arithmetic
model's answer accuracy (the read's answer is the label's), per-character accuracy and the most frequent
character confusions (truth->prediction), and writes into
report_dir (default: report/ beside the checkpoint) a PNG grid of the mispredicted captchas with
truth and prediction, and a JSON report of the counts, metrics, confusions and every wrong item.
It says how many of the folder's images it scored; when more than half could not be (labels outside the
checkpoint's charset or length, unreadable files) it gives no accuracy and ends with an error.
Wrong items come most confident first: a misread the model is sure of in every character is often
a wrong label (a real data set's labels are typed by people), so those are the ones to check first.
It also says how many reads are unsure (a character below unsure_below) and how right the sure ones
are. With --least_sure=N it writes the N least sure reads of the folder, labelled or not, to
report_dir/FOLDER_least_sure.tsv: the captchas whose labels would teach the model most.
With --min_accuracy=A it ends with an error (exit status 1) when the case-insensitive accuracy is below A:
a script (make demo) stops at a model that did not learn, with the command that trains it longer.

Labels come from file names (`LABEL.jpg`, `LABEL_anything.jpg`) or a labels.csv, as for training
(see golden_set/README.md). The folder is read at the checkpoint's image size, charset and length.
"""
import json
import os

from dataset import (confusions, decode_logits, format_confusions, image_names, least_confidence, list_folder,
                     load_folder, load_unlabelled, Reading, score)
from files import atomic_write
from grid import image_grid
from command_line import fail, parse_args, run_main, script_command
from predictor import is_unsure, load_model_or_exit

TOP_CONFUSIONS = 15
GRID_LIMIT = 120  # captchas drawn in the error grid; the JSON report lists them all
GRID_COLUMNS = 6
SURE_SHOWN = 10  # sure misreads named on the console; the JSON report lists every misread
GRID_SCALE = 3
HOW_TO_FILL = ("put hand-labelled captchas of your site there, named LABEL.jpg or LABEL_anything.jpg "
               "(or list them in labels.csv as filename,label); see golden_set/README.md")


def report_folder(params, checkpoint):
    return params.report_dir or os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "report")


def draw_grid(items, path):
    """A PNG of mispredicted captchas (what the model saw, enlarged) with truth and prediction under each.

    Red text: wrong even ignoring case; orange: only the case of a letter is wrong.
    """
    captions = [f"truth {item['truth']}\nread  {item['prediction']}" for item in items]
    colours = [("black", (230, 120, 0) if item["right_ignoring_case"] else (200, 0, 0)) for item in items]
    grid = image_grid([item["image"] for item in items], captions, colours, scale=GRID_SCALE, columns=GRID_COLUMNS)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    grid.save(path)


def least_sure_list(predictor, folder, reading, params, output):
    """Write the params.least_sure reads of `folder` (labels not needed) whose least sure character is the
    least sure of all: the captchas whose labels would teach the model most. Returns the list's path."""
    captchas = load_unlabelled(folder, reading, quiet=True)
    logits = predictor.logits(captchas.images)
    _, confidences = decode_logits(logits, predictor.charset, fold_case=True)
    texts, _ = decode_logits(logits, predictor.charset)
    order = sorted(range(len(captchas)), key=lambda index: least_confidence(confidences[index]))[:params.least_sure]
    lines = ["file\tread\tleast sure character's confidence"]
    lines += [f"{captchas.names[i]}\t{texts[i]}\t{least_confidence(confidences[i]):.4f}" for i in order]
    path = os.path.join(output, f"{os.path.basename(os.path.normpath(folder)) or 'golden'}_least_sure.tsv")
    atomic_write(path, "\n".join(lines) + "\n")
    print(f"the {len(order)} least sure of {len(captchas)} reads of {folder} (label these first): {path}")
    return path


def misreads(golden, predictions, folded, confidences):
    """The wrong reads, surest first (a misread the model is sure of is often a wrong label)."""
    wrong = [{"file": name, "truth": truth, "prediction": predicted, "prediction_ignore_case": lower,
              "right_ignoring_case": lower == truth.lower(), "confidences": [round(float(c), 4) for c in row],
              "image": image}
             for name, truth, predicted, lower, row, image in zip(golden.names, golden.labels, predictions, folded,
                                                                  confidences, golden.images)
             if predicted != truth]
    return sorted(wrong, key=lambda item: -least_confidence(item["confidences"]))


def print_scores(golden, total, metrics, wrong, pairs, unsure, params, predictor):
    count, right = len(golden), round(metrics["accuracy_ignore_case"] * len(golden))
    skipped = f" ({total - count} could not be, listed above)" if total > count else ""
    print(f"golden set {params.golden_dir}: scored {count} of {total} images{skipped}, "
          f"checkpoint {predictor.checkpoint}")
    print(f"whole-captcha accuracy: {metrics['accuracy']:.4f} case-sensitive "
          f"({count - len(wrong)}/{count}), {metrics['accuracy_ignore_case']:.4f} case-insensitive ({right}/{count})")
    print(f"per-character accuracy: {metrics['char_accuracy']:.4f}")
    if "answer_accuracy" in metrics:
        print(f"answer accuracy (arithmetic): {metrics['answer_accuracy']:.4f} "
              f"({round(metrics['answer_accuracy'] * count)}/{count} answered as their labels)")
    print(f"most frequent confusions (truth->prediction): {format_confusions(pairs)}")
    sure_right = sum(not flag and lower == truth.lower() for flag, lower, truth in unsure)
    sure_count = sum(not flag for flag, _, _ in unsure)
    print(f"{count - sure_count} of {count} reads unsure (a character below {params.unsure_below:g}); the "
          f"{sure_count} sure ones are right ignoring case {sure_right / max(1, sure_count):.4f}")
    sure = [item for item in wrong if least_confidence(item["confidences"]) >= params.sure_confidence]
    if sure:
        listed = ", ".join(f"{item['file']} (labelled {item['truth']}, read {item['prediction']})"
                           for item in sure[:SURE_SHOWN])
        more = f" and {len(sure) - SURE_SHOWN} more" if len(sure) > SURE_SHOWN else ""
        print(f"{len(sure)} misreads at >= {params.sure_confidence:g} confidence in every character; check their labels: "
              f"{listed}{more}")


def write_report(golden, total, metrics, wrong, pairs, params, predictor, output):
    base = os.path.basename(os.path.normpath(params.golden_dir)) or "golden"
    if wrong:
        grid_path = os.path.join(output, f"{base}_errors.png")
        draw_grid(wrong[:GRID_LIMIT], grid_path)
        shown = f"the first {GRID_LIMIT} of " if len(wrong) > GRID_LIMIT else ""
        print(f"grid of {shown}the {len(wrong)} mispredicted captchas: {grid_path}")
    else:
        print("no mispredicted captchas: no error grid written")
    report = {
        "folder": params.golden_dir, "checkpoint": predictor.checkpoint, "images": total, "count": len(golden),
        "skipped": total - len(golden),
        "correct": len(golden) - len(wrong), "correct_ignore_case": round(metrics["accuracy_ignore_case"] * len(golden)),
        "metrics": metrics,
        "confusions": [{"truth": truth, "prediction": predicted, "count": n} for (truth, predicted), n in pairs],
        "wrong": [{key: value for key, value in item.items() if key != "image"} for item in wrong],
    }
    report_path = os.path.join(output, f"{base}_report.json")
    atomic_write(report_path, json.dumps(report, indent=2))
    print(f"report: {report_path}")


def refuse_partial_score(folder, scored, total, charset):
    """End with one line when most of the folder's images could not be scored (labels outside the
    checkpoint's charset or length, unreadable files): a score over the rest is not the folder's."""
    if 2 * scored < total:
        fail(f"only {scored} of the {total} images in {folder} could be scored (the others are listed above), "
             f"so no accuracy is given for the folder; the checkpoint reads {charset.lengths} characters of "
             f"{charset.chars!r}: is it the model for these captchas?")


def main(argv=None):
    params = parse_args(argv, doc=__doc__, script=__file__)
    predictor = load_model_or_exit(params)
    params = predictor.params  # the caller's settings with the checkpoint's charset, length and image size
    folder, output = params.golden_dir, report_folder(params, predictor.checkpoint)
    if not os.path.isdir(folder):
        fail(f"no golden set: folder {folder!r} does not exist; create it and {HOW_TO_FILL}")
    reading = Reading.of(params)
    if params.least_sure:
        least_sure_list(predictor, folder, reading, params, output)
    entries, _ = list_folder(folder, reading)
    golden = load_folder(folder, reading, quiet=params.least_sure > 0 and not entries)
    total = len(image_names(folder))
    if len(golden) == 0 and (params.least_sure or total == 0):
        if params.least_sure:
            return  # an unlabelled folder: the list was the job
        fail(f"the golden set {folder!r} has no usable labelled captchas; {HOW_TO_FILL}")
    refuse_partial_score(folder, len(golden), total, predictor.charset)

    logits = predictor.logits(golden.images)  # the path predictor.py reads images by (userPred, the API)
    metrics, predictions = score(logits, golden.labels, predictor.charset, predictor.grammar)
    folded, folded_confidences = decode_logits(logits, predictor.charset, fold_case=True)
    _, confidences = decode_logits(logits, predictor.charset)
    unsure = [(is_unsure(row, params.unsure_below), lower, truth)
              for row, lower, truth in zip(folded_confidences, folded, golden.labels)]
    wrong = misreads(golden, predictions, folded, confidences)
    pairs = confusions(predictions, golden.labels, TOP_CONFUSIONS)
    print_scores(golden, total, metrics, wrong, pairs, unsure, params, predictor)
    write_report(golden, total, metrics, wrong, pairs, params, predictor, output)
    check_min_accuracy(metrics["accuracy_ignore_case"], params, predictor.checkpoint)


def check_min_accuracy(accuracy, params, checkpoint):
    """End non-zero when the model reads too little to be of use (a starved or failed run): a script such
    as make demo stops there, with the fix."""
    if accuracy < params.min_accuracy:
        model_dir = os.path.dirname(checkpoint) or "."
        fail(f"the model reads {accuracy:.4f} of {params.golden_dir} (case-insensitive), below --min_accuracy="
             f"{params.min_accuracy:g}: it has not learnt these captchas (a run too short says so in its last lines; "
             f"or they differ from its training set); train it longer: "
             f"{script_command('main.py', 'train')} --resume --model_dir={model_dir} --extend=10", status=1)


if __name__ == "__main__":
    run_main(main)
