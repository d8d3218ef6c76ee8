
def tilted_nll(logp: Tensor, tgt: Tensor, hint: np.ndarray, beta: np.ndarray, has_leading_space_lut: Tensor) -> Tensor:
    """Tilt toward the hint, applied to word-start tokens (the expert is tuned for word starts)."""
    beta_t = torch.as_tensor(beta, dtype=logp.dtype)
    hint_t = torch.as_tensor(np.maximum(hint, 0), dtype=torch.long)
    p_hint = logp.gather(-1, hint_t[:, None]).squeeze(-1).exp()
    log_z = torch.log1p(p_hint * (torch.exp(beta_t) - 1.0))
    lp_tgt = logp.gather(-1, tgt[:, None]).squeeze(-1)
    tilted = lp_tgt + beta_t * (tgt == hint_t).to(logp.dtype) - log_z
    word_start = has_leading_space_lut[tgt]
    return -torch.where(word_start & (beta_t > 0), tilted, lp_tgt)
