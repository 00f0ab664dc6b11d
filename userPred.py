"""Read captchas with a trained checkpoint: one or more image files, folders, or image bytes on stdin.

    python userPred.py captcha.jpg                         # text, per-character confidences, time
    python userPred.py shots/ other.png                    # every image of a folder, and a file
    curl -s https://example.com/captcha | python userPred.py -      # image bytes on stdin
    python userPred.py --json captcha.jpg                  # one JSON list of results
    python userPred.py --checkpoint=runs/x/best.pt captcha.jpg
    python userPred.py --backend=onnx captcha.jpg          # onnxruntime on best.onnx (python export_onnx.py)

The checkpoint (default model_dir/best.pt) carries the charset, captcha length and image size, so
no other setting is needed. A read whose least sure character is below --unsure_below (ignoring case)
ends in UNSURE ("unsure": true in JSON). A file that is missing or not an image gets a one-line error; the others
are still read, and the exit status is 1 when any failed.

This is the command line over predictor.py (the library a program of your own imports); with --backend=onnx
nothing here imports PyTorch (requirements-serve.txt is enough).
"""
import json
import os
import sys
import time

from dataset import IMAGE_EXTENSIONS
from images import ImageError, open_image
from command_line import fail, parse_args, run_main
from predictor import load_model_or_exit, predict, size_warning, use_predict_threads


def expand(arguments):
    """Command-line arguments -> [(name, path or '-', error or None)]; folders list their images."""
    items = []
    for argument in arguments:
        if argument == "-":
            items.append(("-", "-", None))
        elif os.path.isdir(argument):
            names = sorted(name for name in os.listdir(argument) if name.lower().endswith(IMAGE_EXTENSIONS))
            if not names:
                items.append((argument, None, "folder has no images"))
            items += [(os.path.join(argument, name), os.path.join(argument, name), None) for name in names]
        elif os.path.isfile(argument):
            items.append((argument, argument, None))
        else:
            items.append((argument, None, "no such file or folder"))
    return items


def read_one(predictor, source):
    """(result with 'ms', None) or (None, error) for a path or '-' (stdin)."""
    try:
        if source == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(source, "rb") as handle:
                data = handle.read()
    except OSError as error:
        return None, f"cannot read ({error.strerror})"
    start = time.perf_counter()
    try:
        image = open_image(data)
        result = predict(predictor, [image])[0]
    except ImageError as error:
        return None, str(error)
    result["ms"] = (time.perf_counter() - start) * 1000
    return {**result, "size": image.size}, None


def answer_text(result):
    """' answer 11', ' no answer (why)', or '' for a model that does not answer."""
    if "answer" not in result:
        return ""
    return f"  answer {result['answer']}" if result["answer"] is not None else f"  no answer ({result['answer_error']})"


def result_line(result):
    """'aB3x  confidences 0.99 ...  1.2 ms', with the read ignoring case where it differs from the text's
    lower case (each letter's two cases summed, it can pick another character where the model is unsure)."""
    folded = result["text_ignore_case"]
    other = f"  (ignoring case, each letter's two cases summed: {folded})" if folded != result["text"].lower() else ""
    confidences = " ".join(f"{c:.3f}" for c in result["confidences"])
    mark = "  UNSURE" if result["unsure"] else ""
    return f"{result['text']}{answer_text(result)}{other}  confidences {confidences}  {result['ms']:.1f} ms{mark}"


def warn_of_size(size, predictor, warned):
    """Warn once for each image size far from the model's (predictor.size_warning)."""
    line = size_warning(size, predictor)
    if line and size not in warned:
        warned.add(size)
        print(f"warning: {line}", file=sys.stderr, flush=True)


def main(argv=None):
    params, arguments = parse_args(argv, doc=__doc__, script=__file__, positional=True)
    if not arguments:
        fail("name one or more image files or folders, or - for image bytes on stdin (see --help)")
    predictor = load_model_or_exit(params)
    use_predict_threads(params)
    failed, results, warned = 0, [], set()
    for name, source, problem in expand(arguments):
        result = None
        if problem is None:
            result, problem = read_one(predictor, source)
        if problem is not None:
            failed += 1
            print(f"{name}: error: {problem}", file=sys.stderr)
            results.append({"file": name, "error": problem})
            continue
        warn_of_size(result.pop("size"), predictor, warned)
        results.append({"file": name, **result})
        if not params.json:
            print(f"{name}: {result_line(result)}", flush=True)
    if params.json:
        print(json.dumps(results, indent=2))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    run_main(main)
