"""The query rules that read more than one table of probabilities: Monte-Carlo dropout passes (BALD),
the classifier's input for every pool row (BADGE, greedy core-set, contrastive active learning), and the
class-balancing wrapper that works on any strategy's order.

Pure numpy, like trainables/query.py, which validates the inputs and calls these through `select`; the
model side that computes the inputs in one pass over the pool is trainables/pool_outputs.py. Every
function is deterministic given its inputs (and `seed` where it draws). tests/test_small_text.py checks
each against small-text 1.4.1 where small-text has it, and says where these differ on purpose.
"""

from __future__ import annotations

import numpy as np

# Contrastive active learning's neighbours: the paper's and small-text's default.
CONTRASTIVE_NEIGHBOURS = 10
# The class-balancing wrapper fills its quotas from the base strategy's BALANCE_CANDIDATES x n most wanted
# rows: enough to find rows of several predicted classes, few enough that every row it takes is one the base
# strategy ranks high (from the whole pool it would take confident rows of rare classes: another strategy).
BALANCE_CANDIDATES = 3


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats over the last axis, with 0 * log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(probs > 0, probs * np.log(probs), 0.0)
    return -plogp.sum(axis=-1)


def bald_scores(mc_probs: np.ndarray) -> np.ndarray:
    """BALD (Houlsby et al. 2011) with Monte-Carlo dropout (Gal et al. 2017): per pool row, the mutual
    information between the prediction and the weights, H(mean_t p_t) - mean_t H(p_t), in nats.
    mc_probs: (passes, pool, classes). 0 where every pass agrees; at most log(classes)."""
    return np.maximum(entropy(mc_probs.mean(axis=0)) - entropy(mc_probs).mean(axis=0), 0.0)


def gradient_embeddings(probs: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """BADGE's gradient embedding (Ash et al. 2020): the gradient of the cross-entropy with respect to the
    classifier's last linear layer, taking the predicted class as the label, in closed form (no autograd).

    A classifier (embeddings (pool, dim), one weight row per class): logit_c = w_c . h, so the gradient
    for w_c is (p_c - [c = argmax p]) h, and the embedding is (p - onehot) (x) h, (pool, classes * dim),
    class-major. Multiple choice (embeddings (pool, choices, dim): one input per option, ONE shared weight
    row): logit_c = w . h_c, so the gradient is sum_c (p_c - [c = argmax p]) h_c, (pool, dim)."""
    scale = probs.copy()
    scale[np.arange(len(probs)), probs.argmax(axis=1)] -= 1.0
    if embeddings.ndim == 3:
        return np.einsum("pc,pcd->pd", scale, embeddings)
    return (scale[:, :, None] * embeddings[:, None, :]).reshape(len(probs), -1)


def kmeans_pp_order(points: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n distinct rows chosen by k-means++ seeding, in the order chosen: scikit-learn's `kmeans_plusplus`
    (greedy, 2 + log n candidate draws per centre; the first centre uniform), as small-text's BADGE calls it,
    from np.random.RandomState(seed). Where it picks a row twice (every remaining row at distance 0 from the
    centres), the rest are filled with the unpicked rows in a seeded random order."""
    # scikit-learn takes 2 s to import: only a strategy that runs k-means++ waits for it, not the command
    # line that only checks a strategy's name (trainables/config.py imports trainables/query.py).
    from sklearn.cluster import kmeans_plusplus  # noqa: PLC0415

    _, picked = kmeans_plusplus(points, n, x_squared_norms=(points**2).sum(axis=1),
                                random_state=np.random.RandomState(seed))
    order = list(dict.fromkeys(int(i) for i in picked))  # first occurrences, in pick order
    if len(order) < n:
        rest = np.setdiff1d(np.arange(len(points)), order)
        order += np.random.default_rng(seed).permutation(rest)[: n - len(order)].tolist()
    return np.array(order, dtype=np.int64)


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero): distances then compare directions, as
    small-text's core-set and contrastive strategies do by default (normalize=True)."""
    flat = vectors.reshape(len(vectors), -1)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    return np.divide(flat, norms, out=np.zeros_like(flat), where=norms > 0)


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (len(a), len(b)) through |a|^2 + |b|^2 - 2 a.b: a (pool, labelled) matrix with no
    (pool, labelled, dim) intermediate (500 x 800 x 384 floats would be 1.2 GB)."""
    squared = (a**2).sum(axis=1)[:, None] + (b**2).sum(axis=1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def coreset_order(embeddings: np.ndarray, labelled: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Greedy core-set, k-center greedy (Sener and Savarese 2018): the labelled rows are the initial centres;
    each pick is the pool row farthest from its nearest centre (ties: the lower index), which then becomes a
    centre. Rows are L2-normalised first. With no labelled row the first pick is a seeded uniform draw."""
    pool = normalise(embeddings)
    order = []
    if len(labelled):
        nearest = distances(pool, normalise(labelled)).min(axis=1)
    else:
        order.append(int(np.random.default_rng(seed).integers(len(pool))))
        nearest = distances(pool, pool[order]).ravel()
    while len(order) < n:
        nearest[order] = -np.inf  # a centre is never picked again
        pick = int(np.argmax(nearest))
        order.append(pick)
        nearest = np.minimum(nearest, distances(pool, pool[[pick]]).ravel())
    return np.array(order[:n], dtype=np.int64)


def contrastive_scores(probs: np.ndarray, embeddings: np.ndarray, labelled: np.ndarray,
                       labelled_probs: np.ndarray, neighbours: int = CONTRASTIVE_NEIGHBOURS) -> np.ndarray:
    """Contrastive active learning (Margatina et al. 2021): per pool row, the mean over its `neighbours`
    nearest labelled rows (L2-normalised embeddings, Euclidean; ties: the lower index) of
    KL(p_neighbour || p_row), in nats, with the student's predictions on both. Infinite where the row puts
    zero probability on a class a neighbour gives mass to (the most contrastive a row can be)."""
    k = min(neighbours, len(labelled))
    nearest = np.argsort(distances(normalise(embeddings), normalise(labelled)), axis=1, kind="stable")[:, :k]
    neighbour_probs = labelled_probs[nearest]  # (pool, k, classes)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(neighbour_probs > 0, neighbour_probs * np.log(neighbour_probs / probs[:, None, :]), 0.0)
    return terms.sum(axis=2).mean(axis=1)


def balanced_pick(order: np.ndarray, predicted: np.ndarray, n: int) -> np.ndarray:
    """n rows of `order` (a strategy's candidates, most wanted first) with predicted-class quotas: round by
    round, each predicted class gives its next most wanted row (classes in the order of their most wanted
    row), so shares are equal and a class short of candidates leaves its share to the others. Returned most
    wanted first. `predicted`: the predicted class of every pool row (order indexes it)."""
    queues: dict[int, list[int]] = {}
    for row in order.tolist():
        queues.setdefault(int(predicted[row]), []).append(row)
    chosen: list[int] = []
    depth = 0
    while len(chosen) < n:
        chosen += [queue[depth] for queue in queues.values() if depth < len(queue)][: n - len(chosen)]
        depth += 1
    rank = {row: position for position, row in enumerate(order.tolist())}
    return np.array(sorted(chosen, key=rank.__getitem__), dtype=np.int64)
