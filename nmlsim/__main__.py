"""``python -m nmlsim`` and the ``nmlsim`` program: the command line (nmlsim.cli)."""
import os
import signal
import sys


def _early_interrupt(signum, frame):
    # a Ctrl-C while the command line is still loading: nothing has been read or written yet
    sys.stderr.write("nmlsim: interrupted\n")
    os._exit(130)


def run() -> None:
    signal.signal(signal.SIGINT, _early_interrupt)
    from .cli import entry
    entry()


if __name__ == "__main__":
    run()
