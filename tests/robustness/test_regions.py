import torch

from trustlab.core.results import Result
from trustlab.data import load_dataset
from trustlab.models import load_reference_model
from trustlab.robustness.regions import region_result, region_search, split_by_quantile


def test_split_by_quantile_ranks_pixels_and_breaks_ties():
    maps = torch.zeros(2, 1, 2, 3)
    maps[0, 0, 0, 2] = 5.0
    maps[0, 0, 1, 1] = 3.0
    obj, background = split_by_quantile(maps, 0.5)
    assert obj.shape == (2, 1, 2, 3) and obj.sum((1, 2, 3)).tolist() == [3, 3]
    assert obj[0, 0, 0, 2] and obj[0, 0, 1, 1] and torch.equal(background, ~obj)
    obj_small, _ = split_by_quantile(maps, 5 / 6)
    assert obj_small.sum((1, 2, 3)).tolist() == [1, 1] and obj_small[0, 0, 0, 2]


def test_region_search_on_the_reference_model():
    data = load_dataset("mnist", "sample").subset(slice(0, 24))
    model = load_reference_model()
    searches, obj = region_search(model, data.x, data.y, quantile=0.5, eps_max=1.0, tol=1 / 128, show_progress=False)
    assert obj.float().mean().item() == 0.5
    whole, o, b = searches["whole"].eps_star, searches["object"].eps_star, searches["background"].eps_star
    # restricting the perturbation can only make the (monotone, sign-step) attack need a larger budget
    finite = torch.isfinite(o) & torch.isfinite(whole) & ~searches["whole"].nonmonotonic
    assert torch.all(o[finite] >= whole[finite] - 1 / 128)
    result = region_result(searches, data.class_names, quantile=0.5, dataset="mnist", split="sample")
    assert Result.from_json(result.to_json()) == result and 0 <= result.object_more_fragile <= 1
    assert len(result.eps_star["background"]) == 24 and b.shape == (24,)
