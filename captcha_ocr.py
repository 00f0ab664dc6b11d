"""captcha-ocr: the project's scripts as one command, installed by `pip install .`.

    captcha-ocr generate --train_count=20000     # = python generate_captcha.py --train_count=20000
    captcha-ocr train --time_budget=10           # = python main.py --time_budget=10
    captcha-ocr predict captcha.jpg              # = python userPred.py captcha.jpg
    captcha-ocr train --help                     # the script's own --help
    captcha-ocr --version

Each subcommand runs its script's main() with the rest of the command line: the same settings, help and
errors. Exit status: 0 done, 2 a bad command line or input (one line says what), 1 a failure of the work.
"""
import importlib
import sys

__version__ = "0.4.0"

# Subcommand -> (the script's module, what it does).
COMMANDS = {
    "generate": ("generate_captcha", "write labelled captcha folders in a style"),
    "train": ("main", "train a reader on a folder (generated or your own)"),
    "test": ("userTest", "accuracy on a labelled folder, misreads drawn"),
    "predict": ("userPred", "read captcha files, folders or stdin"),
    "serve": ("api_demo", "the HTTP service (POST /predict)"),
    "export": ("export_onnx", "write the ONNX model (and ddddocr's files)"),
    "fit": ("fit_style", "fit a generator style to a folder of a site's captchas"),
    "site": ("site_model", "from a site's unlabelled captchas to a model that reads them"),
    "dashboard": ("visdom_server", "the visdom server of training's live plots"),
}


def usage():
    lines = [__doc__.strip().splitlines()[0], "", "usage: captcha-ocr COMMAND [--key=value ...] [arguments]", "",
             "commands:"]
    lines += [f"  {name:10s} {what} (python {module}.py)" for name, (module, what) in COMMANDS.items()]
    lines += ["", "captcha-ocr COMMAND --help lists a command's settings."]
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        raise SystemExit(0 if argv else 2)
    if argv[0] == "--version":
        print(f"captcha-ocr {__version__}")
        return
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}: one of {', '.join(COMMANDS)} (captcha-ocr --help)",
              file=sys.stderr)
        raise SystemExit(2)
    from command_line import run_main  # here: `captcha-ocr --version` loads nothing else
    module = importlib.import_module(COMMANDS[argv[0]][0])
    run_main(lambda: module.main(argv[1:]))


if __name__ == "__main__":
    main()
