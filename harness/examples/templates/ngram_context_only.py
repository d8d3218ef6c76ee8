
def tilted_nll(logp: Tensor, tgt: Tensor, hint: np.ndarray, beta: np.ndarray, has_leading_space_lut: Tensor) -> Tensor:
    """-log p'(target) with p'(v) = p(v) exp(beta [v = hint]) / Z over the whole vocabulary."""
    bonus = torch.zeros_like(logp)
    rows = np.nonzero(beta > 0)[0]
    bonus[torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(hint[rows], dtype=torch.long)] = torch.as_tensor(beta[rows], dtype=logp.dtype)
    tilted = F.log_softmax(logp + bonus, dim=-1)
    return -tilted.gather(-1, tgt[:, None]).squeeze(-1)
