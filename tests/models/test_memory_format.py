"""Models come with channels-last weights (teakit.models.build_model) and train in their objective's layout
(teakit.train.fit): the same function, logits and heatmaps as the contiguous layout."""
import torch

from teakit.explain import explain
from teakit.models import build_model
from teakit.objectives.rrr import RRR
from teakit.objectives.tea import TEA


def test_built_models_are_channels_last_and_compute_the_same_function():
    torch.manual_seed(0)
    for name, kw in (("cnn", {"width": 4}), ("resnet18", {"stem": "small"})):
        model = build_model(name, 5, **kw).double().train()
        assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4)
        plain = build_model(name, 5, **kw).double().train()
        plain.load_state_dict(model.state_dict())
        plain = plain.to(memory_format=torch.contiguous_format)
        assert all(p.is_contiguous() for p in plain.parameters())
        x = torch.rand(4, 3, 16, 16, dtype=torch.float64)
        target = torch.tensor([0, 1, 2, 3])
        for m in (model, plain):  # eval mode: the (equal) running statistics
            m.eval()
        S, logits = explain(model, x, target, eps=0.05, create_graph=True, return_logits=True)
        S0, logits0 = explain(plain, x, target, eps=0.05, create_graph=True, return_logits=True)
        assert S.is_contiguous() and torch.allclose(S, S0, rtol=1e-9, atol=1e-12)
        assert torch.allclose(logits, logits0, rtol=1e-9, atol=1e-12)
        g = torch.autograd.grad(S.abs().sum(), list(model.parameters())[0])[0]
        g0 = torch.autograd.grad(S0.abs().sum(), list(plain.parameters())[0])[0]
        assert torch.allclose(g, g0, rtol=1e-8, atol=1e-12)


def test_fit_trains_the_student_in_its_objectives_layout(tmp_path, monkeypatch):
    import teakit.train as T
    from teakit import commands as C

    layouts = []
    make_optimizer = T.make_optimizer

    def spy(model, cfg):
        conv = next(p for p in model.parameters() if p.dim() == 4)
        layouts.append("channels_last" if conv.is_contiguous(memory_format=torch.channels_last)
                       and not conv.is_contiguous() else "contiguous")
        return make_optimizer(model, cfg)

    monkeypatch.setattr(T, "make_optimizer", spy)
    for objective in ("erm", "rrr"):
        C.train("colored-digits", objective, tmp_path / objective, cfg=T.TrainConfig(epochs=1),
                data_options={"limit": 64}, progress=False)
    assert layouts == ["channels_last", "contiguous"]  # RRR: plain autograd double backward, faster contiguous
    assert TEA.memory_format == torch.channels_last and RRR.memory_format == torch.contiguous_format
