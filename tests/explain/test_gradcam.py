import pytest
import torch
from torch import nn

from trustlab.core.exceptions import InputError
from trustlab.explain import explain
from trustlab.models import Classifier, load_reference_model


def test_gradcam_maps_are_shaped_like_the_image_and_non_negative():
    model = load_reference_model()
    x = torch.rand(5, 1, 28, 28)
    maps = explain(model, x, method="gradcam", batch_size=2)
    assert maps.shape == (5, 1, 28, 28) and (maps >= 0).all()
    same = explain(model, x, model.predict(x), method="gradcam")
    torch.testing.assert_close(maps, same)


def test_gradcam_by_hand_on_a_one_conv_model():
    conv = nn.Conv2d(1, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight[:] = torch.tensor([1.0, -1.0]).view(2, 1, 1, 1)
    module = nn.Sequential(conv, nn.Flatten(), nn.Linear(2 * 2 * 2, 2, bias=False))
    with torch.no_grad():
        module[2].weight.zero_()
        module[2].weight[1, :4] = 1.0  # class 1 sums channel 0 -> channel weights (1, 0) after averaging
    model = Classifier(module, input_shape=(1, 2, 2), num_classes=2)
    x = torch.tensor([[[[0.1, 0.2], [0.3, 0.4]]]])
    maps = explain(model, x, 1, method="gradcam")
    # Grad-CAM: mean gradient per channel (1 for channel 0, 0 for channel 1) times activations, ReLU
    torch.testing.assert_close(maps, x.clone())


def test_errors():
    model = Classifier(nn.Linear(4, 2), input_shape=(4,), bounds=None)
    with pytest.raises(InputError, match="unknown explanation method 'limes'"):
        explain(model, torch.zeros(1, 4), method="limes")
    with pytest.raises(InputError, match="images"):
        explain(model, torch.zeros(1, 4), method="gradcam")


def test_default_layer_is_the_rectified_feature_map():
    """At the reference CNN's raw last convolution, the ReLU-ed map is empty for most digits."""
    from trustlab.data import load_dataset
    from trustlab.models.probe import gradcam_layer

    model = load_reference_model()
    assert gradcam_layer(model) == "features.4"  # the ReLU after conv2
    x = load_dataset("mnist", "sample").x[:50]
    maps = explain(model, x, method="gradcam")
    assert (maps.flatten(1).sum(dim=1) > 0).all()
