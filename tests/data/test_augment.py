"""data.augment: random crops, flips and cutout."""

import torch

from pcdarts.data import cutout, random_crop, random_flip


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    g = torch.Generator().manual_seed(3)
    y = random_crop(x, 2, g)
    g = torch.Generator().manual_seed(3)
    dy, dx = torch.randint(0, 5, (2,), generator=g), torch.randint(0, 5, (2,), generator=g)
    xp = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        torch.testing.assert_close(y[i], xp[i, :, dy[i] : dy[i] + 6, dx[i] : dx[i] + 6])


def test_flip_and_cutout():
    x = torch.randn(64, 3, 8, 8)
    f = random_flip(x, torch.Generator().manual_seed(0))
    flipped = [(f[i] == x[i].flip(2)).all().item() for i in range(64)]
    assert 10 < sum(flipped) < 54
    c = cutout(torch.ones(16, 1, 8, 8), 4, torch.Generator().manual_seed(0))
    zeros = (c == 0).sum(dim=(1, 2, 3))
    assert zeros.max() == 16 and zeros.min() >= 4  # 4x4 hole, clipped at borders
