"""teakit.models: SmallCNN, UNet and build_model."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from disk_fixtures import disk_images

import teakit
from teakit.models import (
    MODEL_NAMES,
    TORCHVISION_NAMES,
    SmallCNN,
    UNet,
    build_model,
    get_feature_dim,
    get_feature_map,
    get_features,
    get_head,
)
from teakit.teachers import (
    dice_bce_loss,
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("side,in_channels,expected_side", [(32, 3, 8), (28, 1, 7)])
def test_smallcnn_shapes(side, in_channels, expected_side):
    model = SmallCNN(num_classes=10, in_channels=in_channels, width=8, depth=4)
    x = torch.rand(5, in_channels, side, side)
    assert model(x).shape == (5, 10)
    assert model.features(x).shape == (5, model.feature_dim)
    assert model.feature_dim == 64  # 8·width cap reached at block 4
    assert model.forward_features_map(x).shape == (5, model.feature_dim, expected_side, expected_side)
    assert isinstance(model.head, nn.Linear)


def test_smallcnn_channel_cap_and_no_batchnorm():
    model = SmallCNN(num_classes=3, width=4, depth=6, batchnorm=False)
    assert model.feature_dim == 32  # capped at 8·width
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 3)
    with pytest.raises(ValueError, match="depth"):
        SmallCNN(depth=0)


def test_smallcnn_features_head_consistency():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=7, width=8).eval()
    x = torch.rand(4, 3, 32, 32)
    torch.testing.assert_close(model.head(model.features(x)), model(x))
    torch.testing.assert_close(model.pool(model.forward_features_map(x)).flatten(1), model.features(x))


def test_explain_on_smallcnn_is_trainable_second_order():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=10, width=8).train()
    x = torch.rand(6, 3, 32, 32)
    target = torch.randint(0, 10, (6,))
    reference = torch.rand(6, 3, 32, 32)
    heatmap, logits = teakit.explain(model, x, target, "lrp", eps=0.01, create_graph=True,
                                     return_logits=True)
    assert heatmap.shape == x.shape and heatmap.requires_grad
    (heatmap - reference).square().mean().backward(retain_graph=True)
    for name, p in model.named_parameters():
        if name == "head.bias":  # a heatmap does not depend on the last bias
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    model.zero_grad()
    ((heatmap - reference).square().mean() + F.cross_entropy(logits, target)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_build_model_names():
    wanted = {"cnn", "unet", "resnet18", "resnet34", "resnet50", "densenet121", "vgg11_bn", "vgg16_bn"}
    assert wanted <= set(MODEL_NAMES)
    assert set(MODEL_NAMES) == {"cnn", "unet", *TORCHVISION_NAMES}
    x = torch.rand(2, 3, 32, 32)
    cnn = build_model("cnn", 4, width=8, depth=2, batchnorm=False)
    assert isinstance(cnn, SmallCNN) and cnn(x).shape == (2, 4)
    assert get_head(cnn) is cnn.head and get_feature_dim(cnn) == 16
    for name, dim in (("resnet18", 512), ("resnet34", 512), ("resnet50", 2048)):
        model = build_model(name, 5)
        assert get_head(model) is model.fc and get_head(model).out_features == 5
        assert get_feature_dim(model) == dim
    unet = build_model("unet", 2, base=4)
    assert isinstance(unet, UNet) and unet(x).shape == (2, 2, 32, 32)
    with pytest.raises(TypeError):
        get_head(unet)


def test_build_resnet_small_input_features_consistent():
    torch.manual_seed(0)
    model = build_model("resnet18", 3, small_input=True, in_channels=1).eval()
    x = torch.rand(2, 1, 16, 16)
    assert get_feature_map(model, x).shape == (2, 512, 2, 2)
    torch.testing.assert_close(get_head(model)(get_features(model, x)), model(x))
    cnn = build_model("cnn", 3, width=4).eval()
    torch.testing.assert_close(get_head(cnn)(get_features(cnn, x.expand(-1, 3, -1, -1))),
                               cnn(x.expand(-1, 3, -1, -1)))


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_every_torchvision_name_builds_with_head_and_features(name):
    """Every name on the meta device (shapes only, no memory): (B, K) logits and (B, F) features."""
    x = torch.empty(2, 3, 32, 32, device="meta")
    with torch.device("meta"):
        model = build_model(name, 7, stem="small").eval()
    assert model(x).shape == (2, 7)
    head = get_head(model)
    assert head.out_features == 7 and get_features(model, x).shape == (2, get_feature_dim(model))
    assert head is [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


@pytest.mark.parametrize("name,dim,side", [("resnet18", 512, 4), ("densenet121", 1024, 4), ("vgg11_bn", 4096, 1)])
def test_new_families_on_a_small_input(name, dim, side):
    """Real weights, a 32-px batch of 2: logits, head, features and the feature distillation's map."""
    from teakit.objectives.feature_distill import feature_map_and_logits

    torch.manual_seed(0)
    model = build_model(name, 3, stem="small").eval()
    x = torch.rand(2, 3, 32, 32)
    logits = model(x)
    assert logits.shape == (2, 3) and get_feature_dim(model) == dim
    torch.testing.assert_close(get_head(model)(get_features(model, x)), logits)
    fmap, logits2 = feature_map_and_logits(model, x)
    assert fmap.shape[:2] == (2, 512 if name == "vgg11_bn" else dim) and fmap.shape[-1] == side
    torch.testing.assert_close(logits2, logits)
    if name == "densenet121":  # the small stem: 3×3 stride-1 conv0, no pool0
        assert model.features.conv0.kernel_size == (3, 3) and isinstance(model.features.pool0, nn.Identity)
        assert (fmap >= 0).all()  # after the ReLU torchvision applies functionally


def test_small_stem_densenet_explains():
    torch.manual_seed(0)
    model = build_model("densenet121", 2, stem="small").eval()
    heatmap = teakit.explain(model, torch.rand(1, 3, 16, 16), torch.tensor([1]), "lrp", eps=0.01)
    assert heatmap.shape == (1, 3, 16, 16) and torch.isfinite(heatmap).all() and heatmap.abs().sum() > 0


def test_in_channels_and_stem_arguments():
    with torch.device("meta"):
        assert build_model("densenet121", 2, in_channels=1).features.conv0.weight.shape == (64, 1, 7, 7)
        assert build_model("vgg11", 2, in_channels=1).features[0].weight.shape == (64, 1, 3, 3)
        assert build_model("resnet18", 2).conv1.kernel_size == (7, 7)  # build_model's default: ImageNet stem
        assert build_model("resnet18", 2, stem="small", small_input=True).conv1.kernel_size == (3, 3)
        for bad in ({"stem": "auto"}, {"stem": "tiny"}, {"stem": "imagenet", "small_input": True}):
            with pytest.raises(ValueError, match="stem"):
                build_model("resnet18", 2, **bad)
    with pytest.raises(TypeError):
        build_model("cnn", 2, stem="small")


def test_build_model_errors():
    with pytest.raises(ValueError, match="resnet18"):  # message lists the valid names
        build_model("vgg16x", 10)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("cnn", 0)
    with pytest.raises(TypeError):
        build_model("cnn", 10, nonsense=1)


def test_unet_shapes_and_size_check():
    net = UNet(in_channels=3, out_channels=1, base=8, depth=2)
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 1, 32, 32)
    assert UNet(out_channels=3, depth=3)(torch.rand(1, 3, 24, 16)).shape == (1, 3, 24, 16)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.rand(1, 3, 30, 32))


def test_unet_overfits_simple_masks():
    torch.manual_seed(0)
    x, mask = disk_images(n=8, side=32, seed=0)
    net = UNet(base=8, depth=2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(80):
        loss = dice_bce_loss(net(x), mask)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first
    net.eval()
    with torch.no_grad():
        pred = net(x) >= 0
    iou = (pred & mask).sum((1, 2, 3)).float() / (pred | mask).sum((1, 2, 3)).float()
    assert iou.mean() > 0.8, iou
