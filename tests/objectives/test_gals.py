"""GALS (teakit.objectives.gals) with a tiny fake attention model saved as TorchScript."""
import math
import pickle

import pytest
import torch
import torch.nn as nn

from teakit.models import SmallCNN
from teakit.objectives.gals import GALS, NO_MODEL
from teakit.objectives.registry import build_objective


class FakeAttention(nn.Module):
    """Class 0 attends to the left half of the image, every other class to the right half, at raw
    scale 2 (the objective normalises per image)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        B, H, W = x.shape[0], x.shape[2], x.shape[3]
        cols = torch.arange(W, device=x.device).view(1, 1, 1, W).expand(B, 1, H, W)
        left = (cols < W // 2).float()
        return 2.0 * torch.where(y.view(-1, 1, 1, 1) == 0, left, 1.0 - left)


def save(kind, folder):
    if kind == "torchscript":
        path = folder / "attention.pt"
        torch.jit.script(FakeAttention()).save(str(path))
    else:  # a torch.export program with a dynamic batch dimension
        batch = torch.export.Dim("batch")
        program = torch.export.export(FakeAttention(), (torch.ones(2, 1, 1, 2), torch.tensor([0, 1])),
                                      dynamic_shapes=({0: batch}, {0: batch}))
        path = folder / "attention.pt2"
        torch.export.save(program, str(path))
    return path


@pytest.fixture
def attention_file(tmp_path):
    return save("torchscript", tmp_path)


@pytest.mark.parametrize("kind", ["torchscript", "export"])
def test_hand_value(kind, tmp_path):
    attention_file = save(kind, tmp_path)
    """Logits (x0, 2·x1) on 1×2 images of ones: the input gradient of the mean cross-entropy is
    (1/2)·(p − e_y) scaled by (1, 2), with p = (s, 1 − s), s = 1 / (1 + e)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    batch = {"x": torch.ones(2, 1, 1, 2), "y": torch.tensor([0, 1])}
    loss, logs = GALS(attention_file)(batch, model, torch.Generator())
    s = 1 / (1 + math.e)
    # image 0 (class 0, attention on the left pixel): gradient ((s − 1)/2, (1 − s)); outside = the right pixel
    # image 1 (class 1, attention on the right pixel): gradient (s/2, −s); outside = the left pixel
    penalty = ((1 - s) + s / 2) / 4            # L1 mean over 2 images × 2 pixels
    ce = (-math.log(s) - math.log(1 - s)) / 2
    assert logs["gradient_outside"].item() == pytest.approx(penalty, rel=1e-5)
    assert loss.item() == pytest.approx(ce + 10000 * penalty, rel=1e-5)
    assert logs["attention_images"].item() == 1.0


def test_all_zero_attention_adds_nothing():
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2))
    batch = {"x": torch.ones(2, 1, 1, 2), "y": torch.tensor([0, 1])}
    loss, logs = GALS(lambda x, y: torch.zeros(len(x), 1, 4, 4))(batch, model, torch.Generator())
    assert logs["gradient_outside"].item() == 0.0 and logs["attention_images"].item() == 0.0
    assert loss.item() == pytest.approx(logs["ce"].item())


def test_one_step_lowers_the_gradient_outside(attention_file):
    torch.manual_seed(0)
    model = SmallCNN(num_classes=3, width=4, depth=2)
    g = torch.Generator().manual_seed(1)
    batch = {"x": torch.rand(6, 3, 8, 8, generator=g), "y": torch.arange(6) % 3}
    obj = GALS(attention_file, weight=1000.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loss, before = obj(batch, model, g)
    opt.zero_grad()
    loss.backward()
    opt.step()
    _, after = obj(batch, model, g)
    assert after["gradient_outside"] < 0.9 * before["gradient_outside"]


def test_refuses_without_a_model_and_pickles_without_it(attention_file, tmp_path):
    with pytest.raises(ValueError, match="needs a vision-language attention model") as err:
        build_objective("gals")
    assert str(err.value) == NO_MODEL and "ground-truth masks are no substitute" in NO_MODEL
    with pytest.raises(FileNotFoundError, match="does not exist"):
        GALS(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_text("not a model")
    with pytest.raises(ValueError, match="not a TorchScript module"):
        GALS(tmp_path / "bad.pt")
    obj = build_objective("gals", attention_model=attention_file)
    assert obj.config()["attention_model"] == str(attention_file)
    copy = pickle.loads(pickle.dumps(obj))  # the loaded module stays behind; the file is read again
    x, y = torch.rand(3, 3, 4, 4), torch.tensor([0, 1, 2])
    assert torch.equal(copy.attention(x, y)[0], obj.attention(x, y)[0])
