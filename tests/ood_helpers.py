"""A toy detector for the OOD tests: scores each input with a given function (known behaviour)."""

from trustlab.ood.base import Detector


class ToyDetector(Detector):
    """Scores a batch with ``fn(x)``; nothing to learn. ``any_bounds``: accept inputs of any range
    (the base class expects images in [0, 1])."""

    def __init__(self, fn, *, any_bounds: bool = False, batch_size: int = 256) -> None:
        super().__init__(batch_size=batch_size)
        self.fn, self.any_bounds = fn, any_bounds

    def _input_spec(self, x):
        return (tuple(x.shape[1:]), None) if self.any_bounds else super()._input_spec(x)

    def state(self):
        return {}

    def load_state(self, state):
        pass

    def _fit(self, x, y):
        pass

    def _score_batch(self, x):
        return self.fn(x)
