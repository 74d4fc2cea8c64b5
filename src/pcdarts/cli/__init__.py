"""The ``pcdarts`` command. Only this package reads argv and owns the console.

``parser`` builds the arguments; ``commands`` and ``tools`` hold the commands; ``main`` turns the errors a
user can fix (``PCDartsError``, a full disk, a missing path) into one line and lets real bugs keep
their traceback.
"""

from __future__ import annotations

import errno
import logging
import os
import sys

from ..errors import first_line
from .commands import cmd_demo, cmd_eval, cmd_search, cmd_train
from .parser import build_parser
from .studies import cmd_fidelity, cmd_report, cmd_select, cmd_study
from .tools import cmd_derive, cmd_export, cmd_genotypes, cmd_info, cmd_plan, cmd_plot, cmd_predict, cmd_subsample

__all__ = ["build_parser", "main"]


COMMANDS = {
    "export": cmd_export,
    "predict": cmd_predict,
    "subsample": cmd_subsample,
    "plot": cmd_plot,
    "report": cmd_report,
    "search": cmd_search,
    "train": cmd_train,
    "eval": cmd_eval,
    "info": cmd_info,
    "genotypes": cmd_genotypes,
    "derive": cmd_derive,
    "plan": cmd_plan,
    "demo": cmd_demo,
    "study": cmd_study,
    "fidelity": cmd_fidelity,
    "select": cmd_select,
}


# What the machine, not the code, got wrong: full disk, permissions, missing or misplaced paths.


USER_OS_ERRORS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOENT,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.ENAMETOOLONG,
}


MAX_MESSAGE = 400  # characters of an error line


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if "bench" in args and all(a.startswith("-") for a in args[: args.index("bench")]):
        # argparse's REMAINDER drops a leading option (`pcdarts bench --help`): hand the rest over untouched
        from ..bench import main as bench_main

        return bench_main(args[args.index("bench") + 1 :])
    parser = build_parser()
    ns = parser.parse_args(args)
    rank = os.environ.get("RANK", "0")  # under torchrun the console is rank 0's: the others say only what goes wrong
    quiet = ns.quiet or rank != "0"
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("pcdarts").setLevel(logging.WARNING if quiet else logging.NOTSET)
    if rank != "0":
        import warnings

        warnings.filterwarnings("ignore", category=FutureWarning)  # DDP's notes, printed once by rank 0
    from ..errors import PCDartsError
    from ..runs.engine import NonFiniteLoss

    try:
        device = getattr(ns, "device", None)
        if isinstance(device, str) and device != "auto":  # a device that is not here: said before anything else
            from ..runs.environment import pick_device

            pick_device(device)
        return COMMANDS[ns.command](ns)
    except NonFiniteLoss as exc:
        print(f"pcdarts: {first_line(exc, MAX_MESSAGE)}", file=sys.stderr)
        return 1
    except PCDartsError as exc:
        msg = first_line(exc, MAX_MESSAGE)  # user text quoted in a message stays a readable line
        print(f"pcdarts {ns.command}: error: {msg}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`pcdarts ... | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        if exc.errno not in USER_OS_ERRORS:
            raise
        where = exc.filename or getattr(ns, "out", None)
        where = f"{str(where)[:200]}: " if where else ""
        print(f"pcdarts {ns.command}: error: {where}{first_line(exc.strerror or exc, MAX_MESSAGE)}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        if not any(c.__name__ == "TorchDynamoException" for c in type(exc).__mro__):
            raise
        # only --compile gets here (no C++ compiler, an op it cannot compile): no need to import torch._dynamo
        msg = first_line(exc)
        print(
            f"pcdarts {ns.command}: error: torch.compile failed ({msg}); run again without --compile", file=sys.stderr
        )
        return 2
    except KeyboardInterrupt:
        print("pcdarts: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
