"""Evaluation numbers against hand-computed values on a fixture."""
import pytest
import torch

from teakit.evaluate import group_metrics


def test_group_metrics_by_hand():
    # 6 samples, 3 classes; groups 0,0,1,1,2,-1 (the last has no group)
    logits = torch.tensor([[3., 0, 0], [0, 3, 0], [0, 3, 0], [0, 0, 3], [3, 0, 0], [0, 0, 3]])
    y = torch.tensor([0, 0, 1, 2, 1, 2])
    group = torch.tensor([0, 0, 1, 1, 2, -1])
    train_groups = torch.tensor([0, 0, 0, 1, 2])     # frequencies 3/5, 1/5, 1/5
    m = group_metrics(logits, y, group, train_groups)
    # predictions 0,1,1,2,0,2: correct 1,0,1,1,0,1
    assert m["group_accuracy"] == {"0": 0.5, "1": 1.0, "2": 0.0}
    assert m["worst_group_accuracy"] == 0.0
    assert m["average_group_accuracy"] == pytest.approx(0.5)
    assert m["adjusted_average_accuracy"] == pytest.approx(0.6 * 0.5 + 0.2 * 1.0 + 0.2 * 0.0)
    # per-class F1: class 0: P=1/2 R=1/2 -> 0.5; class 1: P=1/2 R=1/2 -> 0.5; class 2: 1.0
    assert m["macro_f1"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    # AUC of class 2 (one-vs-rest): its probability is highest exactly on the two class-2 samples -> 1.0
    assert m["auc_per_class"]["2"] == pytest.approx(1.0)


def test_binary_auc():
    logits = torch.tensor([[0., 1], [0, 2], [0, -1], [0, 0.5]])
    y = torch.tensor([1, 1, 0, 0])
    # scores 1, 2, -1, 0.5: positives {1, 2} beat negatives {-1, 0.5} in all 4 pairs -> AUC 1
    assert group_metrics(logits, y, torch.full((4,), -1))["auc"] == pytest.approx(1.0)
    y2 = torch.tensor([1, 0, 0, 1])  # positives {1, 0.5} vs negatives {2, -1}: 2 of 4 pairs -> 0.5
    assert group_metrics(logits, y2, torch.full((4,), -1))["auc"] == pytest.approx(0.5)
