
def sliding_windows(total_tokens: int, seq_len: int, stride: int) -> list[tuple[int, int, int]]:
    """(start, first scored offset, length) of every window; each target is scored exactly once.

    The first window scores all its positions; each later window, `stride` tokens further on,
    scores only the positions beyond what the previous window covered.
    """
    windows = []
    ws = 0
    while True:
        end = min(ws + seq_len, total_tokens)
        windows.append((ws, 0 if ws == 0 else seq_len - stride, end - ws))
        if end >= total_tokens:
            return windows
        ws += stride


def rank_share(items: list, rank: int, world_size: int) -> list:
    return items[(len(items) * rank) // world_size : (len(items) * (rank + 1)) // world_size]


def window_batches(model: nn.Module, val_tokens: Tensor, windows, seq_len: int, device, batch_seqs: int):
    """Yield (windows, x, y, logits) per batch of windows, logits in float32."""
    for bi in range(0, len(windows), batch_seqs):
        batch = windows[bi : bi + batch_seqs]
        x = torch.zeros(len(batch), seq_len, dtype=torch.int64, device=device)
        y = torch.zeros(len(batch), seq_len, dtype=torch.int64, device=device)
        for i, (ws, _, wlen) in enumerate(batch):
            chunk = val_tokens[ws : ws + wlen + 1].to(device=device, dtype=torch.int64)
            x[i, :wlen] = chunk[:-1]
            y[i, :wlen] = chunk[1:]
        yield batch, x, y, model.forward_logits(x).float()


def scored_bytes(x: Tensor, y: Tensor, i: int, s: int, wlen: int, luts) -> Tensor:
    base_bytes_lut, has_leading_space_lut, is_boundary_token_lut = luts
    tgt, prev = y[i, s:wlen], x[i, s:wlen]
    tb = base_bytes_lut[tgt].to(torch.float64)
    return tb + (has_leading_space_lut[tgt] & ~is_boundary_token_lut[prev]).to(torch.float64)


def reduce_sums(*sums: Tensor) -> None:
    if dist.is_available() and dist.is_initialized():
        for t in sums:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)


def to_metrics(loss_sum: Tensor, token_count: Tensor, byte_count: Tensor) -> tuple[float, float]:
    reduce_sums(loss_sum, token_count, byte_count)
    val_loss = (loss_sum / token_count).item()
    return val_loss, val_loss / math.log(2.0) * (token_count.item() / byte_count.item())


def eval_val_sliding(
    args: Hyperparameters,
    base_model: nn.Module,
    rank: int,
    world_size: int,
    device: torch.device,
    val_tokens: Tensor,
    base_bytes_lut: Tensor,
    has_leading_space_lut: Tensor,
    is_boundary_token_lut: Tensor,
    stride: int,
    batch_seqs: int = 32,
) -> tuple[float, float]:
    """Sliding-window eval: windows of train_seq_len every `stride` tokens, float64 sums."""
    luts = (base_bytes_lut, has_leading_space_lut, is_boundary_token_lut)
    windows = rank_share(sliding_windows(val_tokens.numel() - 1, args.train_seq_len, stride), rank, world_size)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    token_count = torch.zeros((), device=device, dtype=torch.float64)
    byte_count = torch.zeros((), device=device, dtype=torch.float64)
    base_model.eval()
    with torch.inference_mode():
        for batch, x, y, logits in window_batches(base_model, val_tokens, windows, args.train_seq_len, device, batch_seqs):
            nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none")
            nll = nll.reshape(y.shape)
            for i, (ws, s, wlen) in enumerate(batch):
                loss_sum += nll[i, s:wlen].to(torch.float64).sum()
                token_count += float(wlen - s)
                byte_count += scored_bytes(x, y, i, s, wlen, luts).sum()
    return to_metrics(loss_sum, token_count, byte_count)
