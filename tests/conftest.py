import os

os.environ.setdefault("OMP_NUM_THREADS", "2")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


TINY_SEARCH = ["--epochs", "2", "--warmup-epochs", "1", "--layers", "3", "--init-channels", "4",
               "--image-size", "8", "--batch-size", "128", "--no-progress"]
TINY_TRAIN = ["--epochs", "2", "--layers", "3", "--init-channels", "4", "--image-size", "8",
              "--batch-size", "128", "--no-progress"]
