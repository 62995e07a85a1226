"""DiceLoss and CEDiceLoss."""

from __future__ import annotations

import pytest
import torch

import lightkit as lk


def test_dice_is_zero_for_a_perfect_prediction_and_high_for_a_wrong_one():
    target = torch.randint(0, 3, (2, 8, 8))
    perfect = torch.nn.functional.one_hot(target, 3).movedim(-1, 1).float() * 50
    wrong = torch.nn.functional.one_hot((target + 1) % 3, 3).movedim(-1, 1).float() * 50
    loss = lk.losses.DiceLoss()
    assert float(loss(perfect, target)) < 1e-3
    assert float(loss(wrong, target)) > 0.95


def test_dice_matches_a_hand_computation():
    logits = torch.randn(1, 2, 2, 2)
    target = torch.tensor([[[0, 1], [1, 1]]])
    p = logits.softmax(1)
    t = torch.nn.functional.one_hot(target, 2).movedim(-1, 1).float()
    dice = [
        (2 * (p[:, c] * t[:, c]).sum() + 1) / (p[:, c].sum() + t[:, c].sum() + 1) for c in range(2)
    ]
    expected = 1 - torch.stack(dice).mean()
    torch.testing.assert_close(lk.losses.DiceLoss()(logits, target), expected)


def test_dice_ignores_ignore_index_and_has_gradients():
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    target = torch.randint(0, 3, (2, 8, 8))
    target[:, 0] = 255
    loss = lk.losses.DiceLoss(ignore_index=255)
    value = loss(logits, target)
    value.backward()
    assert logits.grad[:, :, 0].abs().max() == 0  # ignored pixels get no gradient
    assert logits.grad[:, :, 1:].abs().max() > 0
    ce_dice = lk.losses.CEDiceLoss(ignore_index=255)(logits, target)
    assert float(ce_dice) > float(value)


def test_dice_shape_mismatch():
    with pytest.raises(ValueError, match=r"got logits \(2, 3, 8, 8\) and target \(2, 4, 4\)"):
        lk.losses.DiceLoss()(torch.randn(2, 3, 8, 8), torch.zeros(2, 4, 4, dtype=torch.long))
