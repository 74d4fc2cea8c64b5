import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "2")

import pytest  # noqa: E402
import torch  # noqa: E402

from tests.tiny import CALIBRATION_TRAIN, QUARTER_SEARCH, QUARTER_TRAIN, study_args  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # the same count torch uses for OpenMP


def one_line(capsys) -> str:
    """What a command wrote to stderr, asserted to be one line with no traceback (``from tests.conftest import``)."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def assert_refused(argv: list[str], message: str, tmp_path, capsys) -> None:
    """A command refused in one line with exit code 2, quickly, and without leaving a run folder behind."""
    from pcdarts.cli import main

    if argv[0] in ("search", "train"):
        argv = [*argv, "--out", str(tmp_path / "run"), "--no-progress"]
    t0 = time.time()
    code = main(argv)
    err = one_line(capsys)
    assert code == 2, err
    assert message in err, err
    assert time.time() - t0 < 20  # refused before anything big is built
    assert not (tmp_path / "run").exists()  # a refused start leaves no folder behind


def pytest_addoption(parser):
    parser.addoption(
        "--device",
        default="cpu",
        help="device of the tests that take the `device` fixture: cpu (CI), cuda or cuda:N (skipped without a GPU)",
    )


@pytest.fixture(scope="session")
def device(request):
    """The chosen device; CUDA tests skip, with the reason, where there is no GPU."""
    name = request.config.getoption("--device")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.skip(f"--device {name}: no CUDA device on this machine")
    return dev


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def digits_runs(tmp_path_factory):
    """The finished runs the tests share, made once: a tiny digits search (``QUARTER_SEARCH``, seconds) in
    ``search`` and a training of its genotype in ``train``.

    Shared: a test that changes a run (a resume, an edited file, a report written into it) copies it first.
    """
    from pcdarts.cli import main

    root = tmp_path_factory.mktemp("digits")
    search, train = str(root / "search"), str(root / "train")
    assert main(["search", "--dataset", "digits", "--out", search, *QUARTER_SEARCH]) == 0
    assert main(["train", "--genotype", search, "--dataset", "digits", "--out", train, *QUARTER_TRAIN]) == 0
    return root


@pytest.fixture(scope="session")
def tiny_search(digits_runs):
    """The shared finished search (``digits_runs / "search"``)."""
    return digits_runs / "search"


@pytest.fixture(scope="session")
def tiny_train(digits_runs):
    """The shared finished training (``digits_runs / "train"``)."""
    return digits_runs / "train"


@pytest.fixture
def stop_after():
    """``with stop_after(n): run_search(...)``: the run ends after n epochs, checkpoint written, as after Ctrl-C.

    The loop's own stop (``GracefulStop``) is asked for once the n-th end-of-epoch checkpoint is saved, so
    nothing in the library exists only for tests.
    """
    import contextlib

    import pcdarts.runs.loop as loop

    @contextlib.contextmanager
    def arm(n: int):
        state = {"left": n, "stop": None}

        class Stop(loop.GracefulStop):
            def __enter__(self):
                state["stop"] = self
                return super().__enter__()

        real = loop.save_checkpoint

        def save(path, obj):
            real(path, obj)
            if not obj.get("mid_epoch"):
                state["left"] -= 1
                if state["left"] <= 0:
                    state["stop"].requested = True

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(loop, "GracefulStop", Stop)
            mp.setattr(loop, "save_checkpoint", save)
            yield

    return arm


@pytest.fixture(scope="session")
def idx_dir(tmp_path_factory):
    """Small Fashion-MNIST-shaped IDX files (``tests.idx_data``), shared by the study and calibration tests."""
    from tests.idx_data import write_idx

    return write_idx(tmp_path_factory.mktemp("idx"))


@pytest.fixture(scope="session")
def calibration(idx_dir, tmp_path_factory):
    """A finished ``pcdarts fidelity`` calibration (3 cells, budgets 1 and 2, 3 second seeds) and its argv.

    Shared: a test that changes the folder (a study run in it, a file removed) copies it first.
    """
    import json

    from pcdarts.cli import main

    out = tmp_path_factory.mktemp("fid") / "f"
    args = ["fidelity", "--dataset", "fashion-mnist", "--data", str(idx_dir), "--out", str(out), "--cells", "3",
            "--budgets", "1,2", "--seed-cells", "3", "--threads", "1", "--no-progress"]  # fmt: skip
    for k, v in CALIBRATION_TRAIN.items():
        args += ["--train-set", f"{k}={json.dumps(v)}"]
    assert main(args) == 0
    return out, args


@pytest.fixture(scope="session")
def finished_study(idx_dir, tmp_path_factory):
    """A finished study of ``tests.tiny.study_args`` (three arms, two random cells); shared as ``tiny_search``."""
    from pcdarts.cli import main

    out = tmp_path_factory.mktemp("study") / "s"
    assert main(study_args(idx_dir, out)) == 0
    return out
