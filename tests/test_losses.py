"""Unit tests for trainables/losses.py against values worked out by hand with `math`."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainables.errors import UsageError
from trainables.losses import cross_entropy_loss, ensemble_probs, kd_loss, kd_loss_masked

# --- an independent reference in plain Python (lists and math, no torch) ---


def ref_softmax(logits: list[float], temperature: float = 1.0) -> list[float]:
    exps = [math.exp(z / temperature) for z in logits]
    return [e / sum(exps) for e in exps]


def ref_kl(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi > 0)


def ref_ce(logits: list[float], label: int) -> float:
    return -math.log(ref_softmax(logits)[label])


def ref_row(
    student: list[float], teachers: list[list[float]], label: int | None, t: float, alpha: float
) -> float:
    """kd_loss formula for one row; label None means teacher-only (weight 1 on the KD term)."""
    probs = [ref_softmax(z, t) for z in teachers]
    target = [sum(col) / len(probs) for col in zip(*probs, strict=True)]
    kd = t**2 * ref_kl(target, ref_softmax(student, t))
    if label is None:
        return kd
    return alpha * kd + (1 - alpha) * ref_ce(student, label)


def rand_case(batch: int = 4, classes: int = 3, teachers: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, classes, generator=g)
    teacher = torch.randn(teachers, batch, classes, generator=g) * 2
    labels = torch.randint(0, classes, (batch,), generator=g)
    return student, teacher, labels


# --- kd_loss ---


def test_identical_student_and_teacher_gives_zero():
    student = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]])
    assert kd_loss(student, student.clone(), None, 2.0, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_loss(student, student.clone()[None], None, 3.0, 1.0).item() == pytest.approx(0.0, abs=1e-6)


def test_alpha_zero_is_plain_cross_entropy():
    student, teacher, labels = rand_case()
    expected = F.cross_entropy(student, labels)
    assert torch.allclose(kd_loss(student, teacher, labels, 4.0, 0.0), expected)


def test_alpha_one_ignores_labels():
    student, teacher, labels = rand_case()
    base = kd_loss(student, teacher, labels, 2.0, 1.0)
    assert torch.equal(kd_loss(student, teacher, (labels + 1) % 3, 2.0, 1.0), base)
    assert torch.equal(kd_loss(student, teacher, None, 2.0, 1.0), base)


def test_temperature_squared_scaling_by_hand():
    # T=2: q = softmax([0, 2] / 2) = [1, e] / (1 + e), p = softmax([2, 0] / 2) = [e, 1] / (1 + e).
    # log(p1/q1) = 1 and log(p2/q2) = -1, so KL = p1 - p2 = (e - 1) / (e + 1); loss = T**2 * KL.
    e = math.e
    kl = (e / (1 + e)) * math.log(e) + (1 / (1 + e)) * math.log(1 / e)
    assert kl == pytest.approx((e - 1) / (e + 1))
    student, teacher = torch.tensor([[0.0, 2.0]]), torch.tensor([[2.0, 0.0]])
    assert kd_loss(student, teacher, None, 2.0, 1.0).item() == pytest.approx(4 * kl, rel=1e-6)
    # Mixed: 0.3 * 4 * KL + 0.7 * CE, with CE = -log softmax([0, 2])[0] = log(1 + e**2).
    mixed = kd_loss(student, teacher, torch.tensor([0]), 2.0, 0.3).item()
    assert mixed == pytest.approx(0.3 * 4 * kl + 0.7 * math.log(1 + e**2), rel=1e-6)


def test_teachers_average_in_probability_space():
    # Teacher A logits [4, 0] (sure), teacher B [0, 0] (unsure), T=1.
    # Probability mean: ([e^4, 1]/(e^4 + 1) + [0.5, 0.5]) / 2 ~ [0.741, 0.259].
    # Logit mean [2, 0] would give softmax ~ [0.881, 0.119]: a different target.
    p_a = math.exp(4) / (math.exp(4) + 1)
    target = [(p_a + 0.5) / 2, ((1 - p_a) + 0.5) / 2]
    logit_mean_target = ref_softmax([2.0, 0.0])
    assert abs(target[0] - logit_mean_target[0]) > 0.1  # the case really tells the two apart

    teacher = torch.tensor([[[4.0, 0.0]], [[0.0, 0.0]]])
    got = ensemble_probs(teacher, 1.0)
    assert got[0].tolist() == pytest.approx(target, rel=1e-6)

    student = torch.tensor([[0.0, 0.0]])  # q = [0.5, 0.5]
    expected = sum(p * math.log(p / 0.5) for p in target)
    assert kd_loss(student, teacher, None, 1.0, 1.0).item() == pytest.approx(expected, rel=1e-6)
    # A student equal to the probability-space target has zero loss; the logit-mean one does not.
    matching = torch.tensor([[math.log(target[0]), math.log(target[1])]])
    assert kd_loss(matching, teacher, None, 1.0, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_loss(torch.tensor([[2.0, 0.0]]), teacher, None, 1.0, 1.0).item() > 1e-2


def test_saturated_teacher_with_zero_probabilities_is_finite():
    # softmax of [1000, 0] is exactly [1, 0] in float32: 0 * log 0 must count as 0, not NaN.
    teacher = torch.tensor([[1000.0, 0.0]])
    assert ensemble_probs(teacher, 1.0)[0, 1].item() == 0.0
    student = torch.tensor([[0.0, 0.0]], requires_grad=True)
    loss = kd_loss(student, teacher, None, 1.0, 1.0)
    loss.backward()
    assert loss.item() == pytest.approx(math.log(2), rel=1e-6)  # KL([1, 0] || [0.5, 0.5])
    assert torch.isfinite(student.grad).all()


def test_gradient_reaches_student_only():
    student, teacher, labels = rand_case()
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    kd_loss(student, teacher, labels, 2.0, 0.5).backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_2d_and_3d_teacher_shapes_agree():
    student, teacher, labels = rand_case(teachers=1)
    two_d = kd_loss(student, teacher[0], labels, 3.0, 0.7)
    assert torch.allclose(kd_loss(student, teacher, labels, 3.0, 0.7), two_d)
    # Three copies of one teacher average to that teacher.
    assert torch.allclose(kd_loss(student, teacher.repeat(3, 1, 1), labels, 3.0, 0.7), two_d)


def test_kd_loss_matches_reference_on_random_batch():
    student, teacher, labels = rand_case(batch=5, classes=4, teachers=3, seed=1)
    rows = [ref_row(student[i].tolist(), teacher[:, i].tolist(), int(labels[i]), 2.5, 0.4) for i in range(5)]
    assert kd_loss(student, teacher, labels, 2.5, 0.4).item() == pytest.approx(sum(rows) / 5, rel=1e-5)


@pytest.mark.parametrize("alpha", [-0.1, 1.1, float("nan")])
def test_bad_alpha_raises(alpha):
    student, teacher, labels = rand_case()
    with pytest.raises(UsageError, match="alpha"):
        kd_loss(student, teacher, labels, 2.0, alpha)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperature_raises(temperature):
    student, teacher, labels = rand_case()
    with pytest.raises(UsageError, match="temperature"):
        kd_loss(student, teacher, labels, temperature, 0.5)


def test_mismatched_shapes_raise():
    student, teacher, labels = rand_case(batch=4, classes=3)
    with pytest.raises(UsageError, match="does not match"):
        kd_loss(student, teacher[:, :3], labels, 2.0, 0.5)  # batch 3 vs 4
    with pytest.raises(UsageError, match="does not match"):
        kd_loss(student[:, :2], teacher, labels, 2.0, 0.5)  # 2 classes vs 3
    with pytest.raises(UsageError, match="labels"):
        kd_loss(student, teacher, labels[:3], 2.0, 0.5)
    with pytest.raises(UsageError, match="labels are required"):
        kd_loss(student, teacher, None, 2.0, 0.5)
    with pytest.raises(UsageError, match="labels must be in"):
        kd_loss(student, teacher, torch.tensor([0, 1, 2, 3]), 2.0, 0.5)


# --- kd_loss_masked ---


def test_masked_all_gold_equals_kd_loss():
    student, teacher, labels = rand_case(batch=6)
    has_gold = torch.ones(6, dtype=torch.bool)
    for alpha in (0.0, 0.3, 1.0):
        expected = kd_loss(student, teacher, labels, 2.0, alpha)
        assert torch.allclose(kd_loss_masked(student, teacher, labels, 2.0, alpha, has_gold), expected)


def test_masked_teacher_only_rows_ignore_labels_in_loss_and_gradient():
    student, teacher, labels = rand_case(batch=4)
    has_gold = torch.tensor([True, False, True, False])

    def loss_and_grad(lbl: torch.Tensor):
        s = student.clone().requires_grad_(True)
        loss = kd_loss_masked(s, teacher, lbl, 2.0, 0.4, has_gold)
        loss.backward()
        return loss.detach(), s.grad

    base_loss, base_grad = loss_and_grad(labels)
    for fake in (-1, 0, 2, 99):
        changed = labels.clone()
        changed[~has_gold] = fake
        loss, grad = loss_and_grad(changed)
        assert torch.equal(loss, base_loss)
        assert torch.equal(grad, base_grad)
    # Changing a gold row's label does change the loss: the test above could fail.
    changed = labels.clone()
    changed[0] = (labels[0] + 1) % 3
    assert not torch.equal(loss_and_grad(changed)[0], base_loss)


def test_masked_mixed_batch_equals_hand_computed_row_mean():
    student, teacher, labels = rand_case(batch=4, classes=3, teachers=2, seed=3)
    has_gold = torch.tensor([True, False, False, True])
    labels = torch.where(has_gold, labels, torch.full_like(labels, -1))
    t, alpha = 2.0, 0.25
    rows = [
        ref_row(
            student[i].tolist(), teacher[:, i].tolist(), int(labels[i]) if has_gold[i] else None, t, alpha
        )
        for i in range(4)
    ]
    got = kd_loss_masked(student, teacher, labels, t, alpha, has_gold).item()
    assert got == pytest.approx(sum(rows) / 4, rel=1e-5)


def test_masked_no_gold_needs_no_labels_and_is_pure_kd():
    student, teacher, _ = rand_case()
    has_gold = torch.zeros(4, dtype=torch.bool)
    expected = kd_loss(student, teacher, None, 2.0, 1.0)  # alpha=1 is the pure KD term
    assert torch.allclose(kd_loss_masked(student, teacher, None, 2.0, 0.3, has_gold), expected)


def test_masked_bad_mask_raises():
    student, teacher, labels = rand_case()
    with pytest.raises(UsageError, match="has_gold"):
        kd_loss_masked(student, teacher, labels, 2.0, 0.5, torch.ones(4))  # float, not bool
    with pytest.raises(UsageError, match="has_gold"):
        kd_loss_masked(student, teacher, labels, 2.0, 0.5, torch.ones(3, dtype=torch.bool))


# --- cross_entropy_loss ---


def test_cross_entropy_loss_ignores_teacher_arguments():
    student, teacher, labels = rand_case()
    expected = F.cross_entropy(student, labels)
    assert torch.allclose(cross_entropy_loss(student, teacher, labels, 2.0, 0.5), expected)
    assert torch.allclose(cross_entropy_loss(student, None, labels, 1.0, 0.0), expected)
    hand = sum(ref_ce(student[i].tolist(), int(labels[i])) for i in range(4)) / 4
    assert cross_entropy_loss(student, None, labels, 1.0, 0.0).item() == pytest.approx(hand, rel=1e-6)
