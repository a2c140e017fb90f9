"""BatchNorm folded into convolutions: the same logits and LRP-ε maps, never a stale copy."""
import pickle

import pytest
import torch
import torch.nn as nn
import torchvision

from teakit.explain import explain
from teakit.explain.fold import FoldedModel, fold_batchnorm
from teakit.models import build_model
from teakit.teachers import DebiasedTeacher


# float32 rounding differs between the two forms: maps agree to 1e-4 of their largest value


def _randomise_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model


def _count(model, kind):
    return sum(isinstance(m, kind) for m in model.modules())


@pytest.mark.parametrize("name", ["resnet18", "cnn"])
def test_folded_copy_gives_the_same_maps_logits_and_hidden_relevance(name):
    torch.manual_seed(0)
    if name == "resnet18":
        model = torchvision.models.resnet18(num_classes=5)
        x = torch.randn(4, 3, 32, 32)
    else:
        model = build_model("cnn", num_classes=5, in_channels=3, width=8)
        x = torch.randn(4, 3, 32, 32)
    model = _randomise_bn(model).eval().to(memory_format=torch.channels_last)
    folded = fold_batchnorm(model)
    assert folded is not None
    assert _count(model, nn.BatchNorm2d) > 0 and _count(folded, nn.BatchNorm2d) == 0
    target = torch.tensor([0, 1, 2, 4])
    eps = torch.tensor([0.0, 0.01, 0.05, 0.1])
    R, logits, H = explain(model, x, target, eps=eps, return_logits=True, feature_layer=-2)
    Rf, logits_f, Hf = explain(folded, x, target, eps=eps, return_logits=True, feature_layer=-2)
    torch.testing.assert_close(logits_f, logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(Rf, R, rtol=1e-3, atol=1e-4 * R.abs().max().item())
    torch.testing.assert_close(Hf, H, rtol=1e-3, atol=1e-4 * H.abs().max().item())
    # the original is untouched
    assert _count(model, nn.BatchNorm2d) > 0


def test_training_mode_or_untraceable_models_are_not_folded():
    model = torchvision.models.resnet18(num_classes=3)
    assert fold_batchnorm(model.train()) is None

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.head = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent: fx cannot trace it
                x = -x
            return self.head(torch.relu(self.bn(self.conv(x))).mean((2, 3)))

    branchy = Branchy().eval()
    assert fold_batchnorm(branchy) is None
    assert FoldedModel().get(branchy) is branchy


def test_a_conv_whose_output_is_used_twice_is_not_folded():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.head = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2)

        def forward(self, x):
            y = self.conv(x)
            return self.head(torch.relu(self.bn(y) + y).mean((2, 3)))

    model = _randomise_bn(Twice()).eval()
    folded = fold_batchnorm(model)
    assert _count(folded, nn.BatchNorm2d) == 1
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(folded(x), model(x))


def test_the_copy_is_rebuilt_when_the_weights_change_and_reused_otherwise():
    torch.manual_seed(0)
    model = _randomise_bn(torchvision.models.resnet18(num_classes=3)).eval()
    memo = FoldedModel()
    x = torch.randn(2, 3, 32, 32)
    first = memo.get(model)
    assert memo.get(model) is first  # nothing changed: the same copy
    with torch.no_grad():
        model.layer1[0].bn1.running_mean.add_(1.0)  # an in-place change of a buffer
    second = memo.get(model)
    assert second is not first
    torch.testing.assert_close(second(x), model(x), rtol=1e-4, atol=1e-5)
    model.load_state_dict(_randomise_bn(torchvision.models.resnet18(num_classes=3), seed=1).state_dict())
    third = memo.get(model)
    assert third is not second
    torch.testing.assert_close(third(x), model(x), rtol=1e-4, atol=1e-5)
    model.layer1[0].bn1.train()  # a module back in training mode: no folding
    assert memo.get(model) is model


def test_a_frozen_teacher_uses_the_folded_copy_and_keeps_it_out_of_its_state():
    torch.manual_seed(0)
    classifier = _randomise_bn(torchvision.models.resnet18(num_classes=3))
    teacher = DebiasedTeacher(classifier)
    assert teacher.explained_classifier() is classifier  # not frozen: may still be trained
    keys = set(teacher.state_dict())
    teacher.freeze()
    folded = teacher.explained_classifier()
    assert folded is not classifier and _count(folded, nn.BatchNorm2d) == 0
    assert set(teacher.state_dict()) == keys
    x = torch.randn(3, 3, 32, 32)
    target = torch.tensor([0, 1, 2])
    R, logits = teacher.heatmap_and_logits(x, target, eps=0.02)
    R_ref, logits_ref = explain(classifier, x, target, eps=0.02, return_logits=True)
    torch.testing.assert_close(R, R_ref, rtol=1e-3, atol=1e-4 * R_ref.abs().max().item())
    torch.testing.assert_close(logits, logits_ref, rtol=1e-4, atol=1e-5)
    clone = pickle.loads(pickle.dumps(teacher))
    assert clone._folded._copy is None
