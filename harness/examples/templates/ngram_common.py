
NGRAM_PRIME = np.uint64(1000003)


def context_hash(val_np: np.ndarray, positions: np.ndarray, order: int) -> np.ndarray:
    """Rolling hash of the order-1 tokens before each position (uint64, wraps)."""
    h = np.zeros(positions.shape[0], dtype=np.uint64)
    for k in range(1, order):
        h = (h * NGRAM_PRIME) ^ val_np[positions - k].astype(np.uint64)
    return h
