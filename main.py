"""Train a captcha reader on train_dir and evaluate it on test_dir every epoch.

    python main.py                                   # defaults from parameters.py
    python main.py --time_budget=20                  # fit the schedule to 20 minutes of training
    python main.py --resume                          # continue model_dir/last.pt where it stopped
    python main.py --data_dir=my_captchas --test_split=0.2 --infer_charset    # a real labelled folder
    python main.py --data_dir=my_captchas --init_from=model/best.pt --infer_charset   # fine-tune on it
    python main.py --model_preset=original           # the original project's ResNet-18 on 32x32
    torchrun --standalone --nproc_per_node=4 main.py # several GPUs (batch_size is per GPU)

Writes model_dir/best.pt (best case-insensitive test accuracy), model_dir/last.pt, log.csv and
curves.png, and plots live to a visdom server when one runs (`make visdom`).
"""
from dataset import DataError
from parameters import fail, parse_args
from train import train


def main(argv=None):
    params = parse_args(argv, doc=__doc__, script=__file__)
    try:
        train(params)
    except (DataError, FileNotFoundError, ValueError) as error:
        fail(str(error))


if __name__ == "__main__":
    main()
