"""What the tests check of a picture a command drew: a real image with something drawn on it."""

from pathlib import Path

from PIL import Image


def assert_drawn(path: Path, min_side: int = 200) -> None:
    """``path`` is an image at least ``min_side`` pixels wide and high, with more than 20 colours (not blank)."""
    with Image.open(path) as im:
        assert min(im.size) >= min_side, (path, im.size)
        assert len(set(im.convert("RGB").get_flattened_data())) > 20, f"{path} is blank"
