"""A bias-free SmallCNN is positively homogeneous: its logit equals the sum of its
ε = 0 LRP relevance (Gradient×Input), with ScaleNorm or without normalisation."""
import pytest
import torch

import teakit
from teakit.models import SmallCNN


@pytest.mark.parametrize("batchnorm", [True, False])
def test_bias_free_logit_equals_relevance_sum(batchnorm):
    torch.manual_seed(0)
    m = SmallCNN(width=4, bias=False, batchnorm=batchnorm)
    m.train()
    m(torch.rand(16, 3, 16, 16))  # move the running statistics away from 1
    m.eval()
    x, t = torch.rand(5, 3, 16, 16), torch.tensor([0, 3, 5, 7, 9])
    R = teakit.explain(m, x, t, eps=0.0)
    logit = m(x).gather(1, t[:, None]).squeeze(1)
    assert torch.allclose(R.sum((1, 2, 3)), logit, atol=1e-5, rtol=1e-4)
    assert not any(n.endswith("bias") for n, _ in m.named_parameters())
    # with biases the sum and the logit differ (the check above can fail)
    mb = SmallCNN(width=4).eval()
    with torch.no_grad():
        for mod in mb.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.bias.uniform_(-0.5, 0.5)
    Rb = teakit.explain(mb, x, t, eps=0.0)
    assert not torch.allclose(Rb.sum((1, 2, 3)), mb(x).gather(1, t[:, None]).squeeze(1), atol=1e-3)
