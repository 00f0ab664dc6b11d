"""Train a captcha reader on train_dir and evaluate it on test_dir every epoch.

    python main.py                                   # defaults from parameters.py
    python main.py --time_budget=20                  # 20 minutes of training, the schedule fitted to them
    python main.py --data_dir=my_captchas --test_split=0.2 --time_budget=10   # a real labelled folder
    python main.py --data_dir=my_captchas --init_from=model/best.pt          # fine-tune on it
    python main.py --unlabelled_dir=site_captchas --init_from=model/last.pt --augment=on   # self-training
    python main.py --model_preset=original           # the original project's ResNet-18 on 32x32
    torchrun --standalone --nproc_per_node=4 main.py # several GPUs (batch_size is per GPU)

The training folder tells its own settings (folder_settings.py): every setting its .generator.json
records, else the image size from its images and the charset and length from its labels; a flag given
wins. A time budget alone sets the run (--epochs, when given, caps it); with neither, 10 epochs and at
least 2,000 steps. batch_size=0 (the default) is 64 for a training set under 20,000 images, else 256.

Writes model_dir/best.pt (best case-insensitive test accuracy), model_dir/last.pt, log.csv and
curves.png, and plots live to a visdom server when one runs (`make visdom`).

Self-training. With --unlabelled_dir (captchas of the target site, no labels needed), the model reads
them at the start of every epoch (or every pseudo_every steps), as they are and in pseudo_views - 1
augmented copies; a read that every view agrees on, each character at least pseudo_threshold sure,
joins training with the text read (unlabelled_fraction of each batch; with pseudo_surest, also that share
of the plain reads, the surest, where each reads the same moved 3 pixels left and right), beside the labelled or
generated training folder. The reads are read again every round as the model improves; log.csv, the
console and the dashboard count those used and those that changed.

Resuming. Ctrl-C (or SIGTERM) finishes the step in flight, saves model_dir/last.pt and prints the
command that continues the run; a second Ctrl-C stops at once. last.pt holds every setting of the
run (data, split, batch size, schedule, augmentation, time budget...), so

    python main.py --resume --model_dir=model        # continues exactly where the run stopped

needs no other flag. Only visdom, visdom_server, visdom_port, visdom_env, workers, threads,
eval_every, eval_batch_size, device, strict, cache_dir and extend may be given with --resume; any
other setting given with a value other than the run's is refused.

Extending. A run that is over (or not) trains longer with

    python main.py --resume --model_dir=model --extend=5     # 5 more minutes of training

on a short cosine tail of the learning rate from lr/10 down to lr/100, with no warm-up (the schedule
does not restart). An interrupted extension continues with --resume alone.
"""
import sys

from command_line import parse_args, parse_overrides, run_main


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    params = parse_args(argv, doc=__doc__, script=__file__)
    given = parse_overrides(argv)[0]  # the settings named on the command line (--resume refuses most)
    try:
        from train import train  # here, not at the top: Ctrl-C while torch loads ends in one line too
        train(params, given)
    except KeyboardInterrupt:
        print("\nerror: interrupted: stopped at once, nothing saved since the last checkpoint", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    run_main(main)
