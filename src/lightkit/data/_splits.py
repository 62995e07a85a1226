"""Seeded, optionally stratified index splits shared by the data modules and k-fold."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch


def _groups(labels: Sequence[int] | None, n: int, generator: torch.Generator) -> list[list[int]]:
    """Indices grouped by label (one group without labels), each group shuffled."""
    if labels is None:
        return [torch.randperm(n, generator=generator).tolist()]
    by_label: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(int(label), []).append(i)
    groups = []
    for label in sorted(by_label):
        members = by_label[label]
        order = torch.randperm(len(members), generator=generator).tolist()
        groups.append([members[j] for j in order])
    return groups


def split_indices(
    n: int, fractions: Sequence[float], seed: int, labels: Sequence[int] | None = None
) -> list[list[int]]:
    """Split ``range(n)`` into ``len(fractions) + 1`` parts: one per fraction, the rest last.

    With ``labels`` the split is stratified: each part gets about its fraction of every class.
    """
    generator = torch.Generator().manual_seed(seed)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for group in _groups(labels, n, generator):
        start = 0
        for k, fraction in enumerate(fractions):
            take = round(len(group) * fraction)
            parts[k] += group[start : start + take]
            start += take
        parts[-1] += group[start:]
    return [sorted(p) for p in parts]


def group_fold_indices(groups: Sequence[Hashable], k: int, seed: int) -> list[list[int]]:
    """``k`` disjoint folds covering every sample, each group whole in one fold.

    Groups are taken largest first (ties in a seeded random order) and each goes to the fold
    with the fewest samples so far, as scikit-learn's ``GroupKFold`` balances them.
    """
    members: dict[Hashable, list[int]] = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    generator = torch.Generator().manual_seed(seed)
    keys = list(members)
    order = [keys[j] for j in torch.randperm(len(keys), generator=generator).tolist()]
    order.sort(key=lambda g: -len(members[g]))  # stable: the seeded order breaks ties
    folds: list[list[int]] = [[] for _ in range(k)]
    for group in order:
        smallest = min(range(k), key=lambda f: len(folds[f]))
        folds[smallest] += members[group]
    return [sorted(f) for f in folds]


def fold_indices(n: int, k: int, seed: int, labels: Sequence[int] | None = None) -> list[list[int]]:
    """``k`` disjoint folds covering ``range(n)``; stratified when ``labels`` are given."""
    generator = torch.Generator().manual_seed(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for group in _groups(labels, n, generator):
        for j, index in enumerate(group):
            folds[(offset + j) % k].append(index)
        offset += len(group)  # keeps fold sizes balanced across classes
    return [sorted(f) for f in folds]
