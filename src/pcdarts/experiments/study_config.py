"""A study's settings: its arms (search configurations), seeds, training protocol and verdict rule."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError, RunError
from ..runs.config import SearchConfig, TrainConfig, resolve_config
from ..runs.formats import without_added
from ..runs.select import SelectConfig


@dataclass(frozen=True)
class Arm:
    """A named search configuration: overrides on top of the study's base search settings."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Arm:
        """``name`` or ``name:key=value,key=value`` (values parsed as JSON where they can be)."""
        name, _, rest = text.partition(":")
        name = name.strip()
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise RunError(f"arm {text!r}: the name must be letters, digits, - or _ (e.g. cap2:max_param_free=2)")
        overrides: dict[str, Any] = {}
        for item in filter(None, (s.strip() for s in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq:
                raise RunError(f"arm {text!r}: {item!r} is not key=value")
            overrides[key.strip().replace("-", "_")] = _value(value.strip())
        return cls(name, overrides)


def _value(text: str) -> Any:
    try:
        return json.loads(text.lower() if text.lower() in ("true", "false", "null") else text)
    except json.JSONDecodeError:
        return text


MAX_UNITS = 10_000  # searches or random cells of one study: beyond any study anyone runs


@dataclass(frozen=True)
class StudyConfig:
    dataset: str = "fashion-mnist"
    data: str | None = None
    arms: tuple[Arm, ...] = (Arm("pcdarts"),)
    searches: int = 3  # searches (seeds 0..S-1) per arm
    random_cells: int = 5  # random cells (seeds 0..R-1)
    train_seed: int = 0  # one training seed for every cell
    search: dict[str, Any] = field(default_factory=dict)  # base search settings (on the dataset's defaults)
    train: dict[str, Any] = field(default_factory=dict)  # the one training protocol
    primary: str | None = None  # the pre-registered arm whose comparison with random cells is the verdict
    rule: str = "effect"  # the verdict: effect (p < 0.05, >= 1 random SD) or superiority (p < 0.05, U/(n1 n2) >= 0.75)
    retrain_random: int = 0  # the first N random cells trained again with training seed + 1: the noise floor
    oneshot_arm: str | None = None  # this arm's supernets also score every random cell with inherited weights
    oneshot_images: int = 2000  # hold-out images (per class, fixed) each one-shot score reads

    def __post_init__(self) -> None:
        if not (0 <= self.searches <= MAX_UNITS and 0 <= self.random_cells <= MAX_UNITS):
            raise ConfigError(f"searches and random cells must be between 0 and {MAX_UNITS:,} each")
        if not self.arms and self.searches:
            raise ConfigError("a study with searches needs at least one arm")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names) or {"random", "random-retrain"} & set(names):
            raise ConfigError(f"arm names must be unique and not 'random' or 'random-retrain', got {names}")
        if self.primary is not None and self.primary not in names:
            raise ConfigError(f"the primary arm {self.primary!r} is not one of the arms {names}")
        for part, keys in (("train", ("genotype", "dataset", "data", "seed")), ("search", ("dataset", "data", "seed"))):
            own = sorted(set(getattr(self, part)) & set(keys))
            if own:  # set by the study itself: a value here would be recorded but not used
                raise ConfigError(
                    f"--{part}-set {own[0]}=... is set by the study itself (cells, --dataset, --data, seeds): drop it"
                )
        held = self.train_config().holdout_images if self.searches and self.arms else 0
        for arm in self.arms if held else ():
            searched = self.search_config(arm, 0).holdout_images
            if searched != held:  # the cells would be selected on images the searches trained on
                raise ConfigError(
                    f"the trainings select on a hold-out of {held:,} images but arm {arm.name!r} searches with "
                    f"holdout_images={searched}: set the same --search-set holdout_images={held}, so that no "
                    "search sees the images its cell is selected on"
                )
        if self.rule not in RULES:
            raise ConfigError(f"the verdict rule must be one of {', '.join(RULES)}, got {self.rule!r}")
        if not 0 <= self.retrain_random <= self.random_cells:
            raise ConfigError(f"retrain random must be between 0 and the {self.random_cells} random cells")
        if self.oneshot_arm is not None and self.oneshot_arm not in names:
            raise ConfigError(f"the one-shot arm {self.oneshot_arm!r} is not one of the arms {names}")
        if self.oneshot_images < 1:
            raise ConfigError(f"one-shot images must be >= 1, got {self.oneshot_images}")

    def search_config(self, arm: Arm, seed: int) -> SearchConfig:
        overrides = {k: v for k, v in arm.overrides.items() if not k.startswith("select")}
        values = {**self.search, **overrides, "seed": seed, "data": self.data}
        try:
            return resolve_config(SearchConfig, self.dataset, values)
        except (TypeError, ValueError) as exc:
            raise RunError(f"arm {arm.name!r}: {exc}") from None

    def base_search_config(self) -> SearchConfig:
        """The base search settings alone, resolved: what names the space of a study without arms."""
        try:
            return resolve_config(SearchConfig, self.dataset, {**self.search, "seed": 0, "data": self.data})
        except (TypeError, ValueError) as exc:
            raise RunError(f"study search settings: {exc}") from None

    def cell(self) -> str:
        """The study's one cell space (``darts`` or ``nasbench201``): its arms' (an arm may set it), else the base
        search settings'. Its searches, random cells and trainings all use it."""
        cells = {self.search_config(arm, 0).cell for arm in self.arms} or {self.base_search_config().cell}
        if len(cells) > 1:
            raise ConfigError(f"the arms search different cell spaces ({', '.join(sorted(cells))}): one per study")
        return next(iter(cells))

    def select_config(self, arm: Arm) -> SelectConfig | None:
        """An arm's perturbation-based selection (``select=pt``, ``select_tune_epochs``, ...), or None."""
        keys = {k: v for k, v in arm.overrides.items() if k.startswith("select")}
        if not keys:
            return None
        values = {("method" if k == "select" else k.removeprefix("select_")): v for k, v in keys.items()}
        try:
            return SelectConfig(**values)
        except (TypeError, ValueError) as exc:
            raise RunError(f"arm {arm.name!r}: {exc}") from None

    def train_config(self) -> TrainConfig:
        values, cell = {**self.train, "seed": self.train_seed, "data": self.data}, self.cell()
        try:
            return resolve_config(TrainConfig, self.dataset, values, cell=cell)
        except (TypeError, ValueError) as exc:
            raise RunError(f"study training settings: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["arms"] = [{"name": a.name, "overrides": a.overrides} for a in self.arms]
        return without_added(d, "study")


RULES = ("effect", "superiority")
