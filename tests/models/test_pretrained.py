"""--pretrained: ImageNet weights read only from the local torch hub cache (never downloaded)."""
import pytest
import torch
from torchvision.models import resnet18

from teakit.models import build_model
from teakit.models.pretrained import load_imagenet_weights, weights_path


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)

    def no_download(*a, **k):  # any download attempt fails the test
        raise AssertionError("tried to download")
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    return tmp_path


def test_expected_path_follows_torch_home(hub):
    assert weights_path("resnet18") == hub / "hub" / "checkpoints" / "resnet18-f37072fd.pth"


def test_missing_weights_give_clear_error(hub):
    expected = hub / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(FileNotFoundError) as err:
        load_imagenet_weights("resnet18")
    msg = str(err.value)
    assert str(expected) in msg and "weights='DEFAULT'" in msg and "copy" in msg
    with pytest.raises(FileNotFoundError, match="resnet18-f37072fd.pth"):
        build_model("resnet18", 10, pretrained=True)
    assert not expected.exists()


def _save_fake_weights(hub):
    torch.manual_seed(0)
    ref = resnet18(weights=None).state_dict()
    path = hub / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(ref, path)
    return ref


def test_pretrained_loads_all_but_fc(hub):
    ref = _save_fake_weights(hub)
    torch.manual_seed(1)
    model = build_model("resnet18", 10, pretrained=True)
    state = model.state_dict()
    for k, v in ref.items():
        if k.startswith("fc."):
            continue
        assert torch.equal(state[k], v), k
    assert state["fc.weight"].shape == (10, 512) and state["fc.bias"].shape == (10,)
    assert not torch.equal(build_model("resnet18", 10)._modules["conv1"].weight, ref["conv1.weight"])


def test_pretrained_1000_classes_loads_fc_and_small_input_skips_stem(hub):
    ref = _save_fake_weights(hub)
    full = build_model("resnet18", 1000, pretrained=True).state_dict()
    assert all(torch.equal(full[k], v) for k, v in ref.items())
    small = build_model("resnet18", 10, small_input=True, pretrained=True).state_dict()
    assert small["conv1.weight"].shape == (64, 3, 3, 3)
    assert torch.equal(small["bn1.weight"], ref["bn1.weight"])
    assert torch.equal(small["layer4.1.conv2.weight"], ref["layer4.1.conv2.weight"])


def test_wrong_file_is_refused(hub):
    path = hub / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(ValueError, match="resnet18-f37072fd.pth"):
        build_model("resnet18", 10, pretrained=True)
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="resnet18-f37072fd.pth"):
        load_imagenet_weights("resnet18")


def test_pretrained_densenet_with_torchvision_legacy_key_names(hub, capsys):
    """torchvision's DenseNet ImageNet files name ``norm1`` as ``norm.1``: renamed as torchvision does."""
    from torchvision.models import densenet121

    torch.manual_seed(0)
    ref = densenet121(weights=None).state_dict()
    legacy = {k.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2."): v for k, v in ref.items()}
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    path = weights_path("densenet121")
    path.parent.mkdir(parents=True)
    torch.save(legacy, path)
    model = build_model("densenet121", 10, stem="small", pretrained=True).state_dict()
    for k, v in ref.items():
        if k.startswith("classifier.") or k == "features.conv0.weight":
            assert model[k].shape != v.shape, k
        else:
            assert torch.equal(model[k], v), k
    out = capsys.readouterr().out
    assert path.name in out and "skipped 3" in out and "features.conv0.weight" in out
