"""--weights FILE: a local state dict loaded into every layer but a head of another size (and a replaced stem)."""
import pytest
import torch
from safetensors.torch import save_file
from torchvision.models import resnet18, vgg11_bn

from teakit.data.imageset import ImageSet
from teakit.models import build_model
from teakit.models.weights import read_state_dict
from teakit.runs import build_from_spec, model_spec


@pytest.fixture(scope="module")
def ref():
    """A torchvision resnet18's state dict (random init, 1000 classes)."""
    torch.manual_seed(0)
    return resnet18(weights=None).state_dict()


def _save(state, path):
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_loads_every_layer_but_a_head_of_another_size(ref, tmp_path, capsys, suffix):
    path = _save(ref, tmp_path / f"r18{suffix}")
    torch.manual_seed(1)
    state = build_model("resnet18", 10, stem="imagenet", weights=path).state_dict()
    for k, v in ref.items():
        if k.startswith("fc."):
            assert state[k].shape != v.shape, k
            continue
        assert torch.equal(state[k], v), k
    assert state["fc.weight"].shape == (10, 512)
    out = capsys.readouterr().out
    n = len(ref) - 2
    assert str(path) in out and f"loaded {n} of its {len(ref)} tensors" in out and "skipped 2" in out
    assert "fc.weight" in out and "fc.bias" in out and "conv1.weight" not in out
    # the same number of classes: the head is loaded too
    full = build_model("resnet18", 1000, weights=path).state_dict()
    assert all(torch.equal(full[k], v) for k, v in ref.items())
    assert "skipped none" in capsys.readouterr().out


def test_small_stem_skips_the_replaced_stem_conv(ref, tmp_path, capsys):
    path = _save(ref, tmp_path / "r18.pth")
    state = build_model("resnet18", 10, stem="small", weights=path).state_dict()
    assert state["conv1.weight"].shape == (64, 3, 3, 3)
    assert torch.equal(state["bn1.weight"], ref["bn1.weight"])
    assert torch.equal(state["layer4.1.conv2.weight"], ref["layer4.1.conv2.weight"])
    out = capsys.readouterr().out
    assert "skipped 3" in out and "conv1.weight (stem" in out
    # an old config's small_input=True is the same stem
    old = build_model("resnet18", 10, small_input=True, weights=path).state_dict()
    assert old["conv1.weight"].shape == (64, 3, 3, 3) and torch.equal(old["bn1.weight"], ref["bn1.weight"])


def test_checkpoint_wrappers_are_unwrapped(ref, tmp_path):
    for key in ("state_dict", "model"):
        path = _save({key: dict(ref), "epoch": 3}, tmp_path / f"{key}.pt")
        state = build_model("resnet18", 1000, weights=path).state_dict()
        assert torch.equal(state["layer2.0.conv1.weight"], ref["layer2.0.conv1.weight"]), key
    ddp = _save({"module." + k: v for k, v in ref.items()}, tmp_path / "ddp.pt")
    assert torch.equal(build_model("resnet18", 3, weights=ddp).state_dict()["bn1.bias"], ref["bn1.bias"])


def test_other_architecture_is_refused_naming_keys(ref, tmp_path):
    torch.manual_seed(0)
    # vgg11_bn's keys (its huge first classifier Linear left out to keep the file small)
    with torch.device("meta"):
        keys = vgg11_bn(weights=None, num_classes=10).state_dict()
    vgg = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in keys.items() if v.numel() < 3_000_000}
    path = _save(vgg, tmp_path / "vgg.pth")
    with pytest.raises(ValueError) as err:
        build_model("resnet18", 10, weights=path)
    msg = str(err.value)
    assert str(path) in msg and "another architecture" in msg
    assert "features.0.weight" in msg and "conv1.weight" in msg  # a key of the file, a key of the model
    # resnet18 weights into resnet34: the model's extra blocks are named
    with pytest.raises(ValueError, match=r"layer1\.2\.conv1\.weight"):
        build_model("resnet34", 10, weights=_save(ref, tmp_path / "r18.pth"))
    # a shape mismatch outside head and stem
    bad = dict(ref, **{"layer1.0.conv1.weight": torch.zeros(32, 64, 3, 3)})
    with pytest.raises(ValueError, match=r"layer1\.0\.conv1\.weight file \(32, 64, 3, 3\)"):
        build_model("resnet18", 10, weights=_save(bad, tmp_path / "bad.pth"))


def test_stem_of_the_other_kind_is_refused_with_a_hint(tmp_path):
    torch.manual_seed(0)
    small = build_model("resnet18", 10, stem="small").state_dict()
    path = _save(small, tmp_path / "small.pth")
    with pytest.raises(ValueError, match="--stem"):
        build_model("resnet18", 10, stem="imagenet", weights=path)
    assert torch.equal(build_model("resnet18", 10, stem="small", weights=path).state_dict()["conv1.weight"],
                       small["conv1.weight"])


def test_missing_or_unreadable_file(tmp_path):
    missing = tmp_path / "nowhere" / "weights.pth"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        build_model("resnet18", 10, weights=missing)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match="garbage.safetensors"):
        read_state_dict(garbage)
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="not a state dict"):
        read_state_dict(tmp_path / "list.pth")
    with pytest.raises(ValueError, match="not both"):
        build_model("resnet18", 10, weights=missing, pretrained=True)


def test_small_cnn_takes_weights_too(tmp_path, capsys):
    torch.manual_seed(0)
    src = build_model("cnn", 4, width=4, depth=2).state_dict()
    path = _save(src, tmp_path / "cnn.pth")
    state = build_model("cnn", 2, width=4, depth=2, weights=path).state_dict()
    assert all(torch.equal(state[k], v) for k, v in src.items() if not k.startswith("head."))
    assert state["head.weight"].shape == (2, src["head.weight"].shape[1])
    assert "head.weight (head" in capsys.readouterr().out


def test_spec_records_the_file_and_a_trained_model_rebuilds_without_it(ref, tmp_path):
    path = _save(ref, tmp_path / "r18.pth")
    spec = model_spec("resnet18", 10, stem="small", weights=str(path))
    loaded = build_from_spec(spec).state_dict()
    assert torch.equal(loaded["layer3.0.bn1.running_var"], ref["layer3.0.bn1.running_var"])
    path.unlink()  # `tea evaluate` loads the trained state: the initial weights' file is not needed
    again = build_from_spec(spec, initial_weights=False)
    assert again.conv1.weight.shape == (64, 3, 3, 3)
    with pytest.raises(FileNotFoundError, match="r18.pth"):
        build_from_spec(spec)


def _data(side):
    """Splits of two (side × side) images, labels 0 and 2."""
    split = ImageSet(x=torch.zeros(2, 3, side, side), y=torch.tensor([0, 2]),
                     mask=torch.zeros(2, 1, side, side, dtype=torch.bool), bias=torch.zeros(2, dtype=torch.long))
    return {"train": split, "val": split}


@pytest.mark.parametrize("name,first_conv", [("resnet18", "conv1"), ("densenet121", "features.conv0")])
@pytest.mark.parametrize("side,stem,kernel,stride", [(32, "auto", 3, 1), (64, "auto", 7, 2), (28, "auto", 3, 1),
                                                     (64, "small", 3, 1), (32, "imagenet", 7, 2)])
def test_stem_resolved_from_the_image_size(name, first_conv, side, stem, kernel, stride):
    from teakit.commands import _resolve_spec

    spec = _resolve_spec(model_spec(name, None, stem=stem), _data(side))
    assert spec["num_classes"] == 3
    assert spec["kwargs"]["stem"] == ("small" if kernel == 3 else "imagenet")  # recorded: rebuilt alike
    with torch.device("meta"):
        model = build_from_spec(spec)
    conv = model.get_submodule(first_conv)
    assert conv.kernel_size == (kernel, kernel) and conv.stride == (stride, stride)
    pool = model.maxpool if name == "resnet18" else model.features.pool0
    assert isinstance(pool, torch.nn.Identity) == (kernel == 3)
    # a spec without a stem (older configs, Python callers) is left as it was
    assert "stem" not in _resolve_spec(model_spec(name, None), _data(side))["kwargs"]


def test_cli_parses_model_stem_and_weights(ref, tmp_path):
    from teakit.cli import _spec, build_parser

    path = _save(ref, tmp_path / "w.pth")
    parser = build_parser()
    common = ["--dataset", "colored-digits", "--teacher", "t", "--out", "o"]
    a = parser.parse_args(["distill", *common, "--model", "densenet121", "--stem", "small", "--weights", str(path)])
    spec = _spec(a)
    assert spec["name"] == "densenet121" and spec["kwargs"] == {"stem": "small", "weights": str(path.absolute())}
    a = parser.parse_args(["train", "--dataset", "colored-digits", "--out", "o", "--model", "vgg16_bn"])
    assert _spec(a)["kwargs"] == {"stem": "auto"}  # resolved from the data when built
    a = parser.parse_args(["distill", *common, "--model", "resnet18", "--weights", str(tmp_path / "nope.pth")])
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        _spec(a)
    a = parser.parse_args(["distill", *common, "--stem", "small"])
    with pytest.raises(ValueError, match="--stem applies"):
        _spec(a)
    a = parser.parse_args(["distill", *common, "--model", "resnet18", "--weights", str(path), "--pretrained"])
    with pytest.raises(ValueError, match="not both"):
        _spec(a)
    with pytest.raises(SystemExit):
        parser.parse_args(["distill", *common, "--model", "resnet18", "--stem", "tiny"])
