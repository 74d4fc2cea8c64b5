"""data.stream: every sample once an epoch, shards, exact resumption, draws on the data device."""

import torch
import torch.nn.functional as F

from pcdarts.data import Augment, BatchStream, get_dataset


def test_stream_covers_every_sample_once_per_epoch_and_resumes_exactly():
    x = torch.arange(10.0).view(10, 1, 1, 1)
    y = torch.arange(10)
    s = BatchStream(x, y, 4, mean=(0.0,), std=(1.0,), seed=1)
    seen = torch.cat([b[1] for b in s.epoch()])
    assert sorted(seen.tolist()) == list(range(10)) and len(s) == 3
    first = s.next_batch()
    state = s.state_dict()
    a = [s.next_batch()[1] for _ in range(4)]
    s2 = BatchStream(x, y, 4, mean=(0.0,), std=(1.0,), seed=99)
    s2.load_state_dict(state)
    b = [s2.next_batch()[1] for _ in range(4)]
    assert all(torch.equal(u, v) for u, v in zip(a, b)) and first[0].shape[0] == 4


def test_shards_do_not_overlap_and_cover_the_split():
    x = torch.zeros(11, 1, 2, 2)
    y = torch.arange(11)
    shards = [BatchStream(x, y, 3, mean=(0.0,), std=(1.0,), seed=5, rank=r, world_size=2) for r in range(2)]
    got = [torch.cat([b[1] for b in s.epoch()]).tolist() for s in shards]
    assert not set(got[0]) & set(got[1])
    assert len(got[0]) == len(got[1]) == 5  # equal shards; one image of the odd tail is left for the next epoch
    assert len(set(got[0]) | set(got[1])) == 10


def test_augment_pipeline_runs_on_stream():
    ds = get_dataset("synthetic", image_size=8, train_size=16, test_size=4)
    s = BatchStream(ds.train_x, ds.train_y, 8, mean=ds.mean, std=ds.std, augment=Augment(2, True, 3))
    x, y = s.next_batch()
    assert x.shape == (8, 3, 8, 8) and x.dtype == torch.float32


def test_batches_are_what_they_were_before_draws_moved_to_the_data_device():
    """The stream indexes with a permutation moved once an epoch and augments with a generator on the data's
    device; on CPU every batch equals the old recipe (CPU draws, moved per batch) bit for bit."""

    from pcdarts.data.augment import Augment
    from pcdarts.data.stream import AUG_SEED_OFFSET, AUG_SEED_STRIDE, BatchStream

    g = torch.Generator().manual_seed(5)
    x, y = torch.randint(0, 256, (20, 1, 6, 6), generator=g, dtype=torch.uint8), torch.arange(20) % 3
    aug = Augment(crop_padding=2, flip=True, cutout=3)
    s = BatchStream(x, y, 8, mean=(0.5,), std=(0.25,), augment=aug, seed=3)
    got = [b for _ in range(2) for b in s.epoch()]
    order = torch.Generator().manual_seed(3)
    draws = torch.Generator().manual_seed(3 * AUG_SEED_STRIDE + AUG_SEED_OFFSET)
    want = []
    for _ in range(2):
        perm = torch.randperm(20, generator=order)
        for i in range(0, 20, 8):
            idx = perm[i : i + 8]
            b = x[idx].float() / 255.0
            n = len(idx)
            dy, dx = (torch.randint(0, 5, (n,), generator=draws) for _ in range(2))
            p = F.pad(b, (2, 2, 2, 2))
            b = torch.stack([p[k, :, dy[k] : dy[k] + 6, dx[k] : dx[k] + 6] for k in range(n)])
            flip = torch.rand(n, generator=draws) < 0.5
            b = torch.where(flip[:, None, None, None], b.flip(3), b)
            b = (b - 0.5) / 0.25
            cy, cx = torch.randint(0, 6, (n,), generator=draws), torch.randint(0, 6, (n,), generator=draws)
            for k in range(n):
                b[k, :, max(0, cy[k] - 1) : cy[k] + 1, max(0, cx[k] - 1) : cx[k] + 1] = 0.0
            want.append((b, y[idx]))
    assert len(got) == len(want) == 6
    for (a, ya), (b, yb) in zip(got, want):
        assert torch.equal(a, b) and torch.equal(ya, yb)


def test_streams_draw_on_the_data_device_and_resume_there(device):
    """No host-to-device copy per batch: the permutation moves once an epoch, augmentation draws on the device."""
    from pcdarts.data.augment import Augment
    from pcdarts.data.stream import BatchStream

    x, y = torch.randint(0, 256, (24, 1, 6, 6), dtype=torch.uint8), torch.arange(24) % 4
    s = BatchStream(x, y, 8, mean=(0.5,), std=(0.25,), augment=Augment(2, True, 2), seed=1, device=device)
    assert s.aug_gen.device.type == device.type
    first = next(iter(s.epoch()))
    state = s.state_dict()
    rest = [b for b in s.epoch()]
    again = BatchStream(x, y, 8, mean=(0.5,), std=(0.25,), augment=Augment(2, True, 2), seed=1, device=device)
    again.load_state_dict(state)
    assert first[0].device.type == device.type
    for (a, ya), (b, yb) in zip(rest, again.epoch()):
        assert torch.equal(a, b) and torch.equal(ya, yb)
