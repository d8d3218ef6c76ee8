
def tilt_hints(val_np: np.ndarray, pos: np.ndarray, hint_table: np.ndarray, hint_count: np.ndarray, args) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hint token, beta, table key) per position, read from the context before it (prefix only)."""
    key = np.zeros(pos.shape[0], dtype=np.int64)
    ok = pos >= args.tilt_order - 1
    key[ok] = (context_hash(val_np, pos[ok], args.tilt_order) & np.uint64(args.tilt_buckets - 1)).astype(np.int64)
    hint = np.where(ok, hint_table[key], -1)
    conf = np.where(ok, hint_count[key], 0)
    beta = np.where((hint >= 0) & (conf >= args.tilt_min_count), args.tilt_beta, 0.0)
    return hint, beta, key


def update_hints(hint_table: np.ndarray, hint_count: np.ndarray, key: np.ndarray, tgt_np: np.ndarray, ok: np.ndarray) -> None:
    # In order, after scoring: the last token seen after a context becomes its hint.
    for k, t in zip(key[ok].tolist(), tgt_np[ok].tolist()):
        if hint_table[k] == t:
            hint_count[k] += 1
        else:
            hint_table[k] = t
            hint_count[k] = 1


def eval_val_sliding_tilt(
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
    """Sliding-window eval with an exponential tilt toward a context-predicted hint token."""
    luts = (base_bytes_lut, has_leading_space_lut, is_boundary_token_lut)
    val_np = val_tokens.cpu().numpy().astype(np.int64)
    hint_table = np.full(args.tilt_buckets, -1, dtype=np.int64)
    hint_count = np.zeros(args.tilt_buckets, dtype=np.int64)
    windows = rank_share(sliding_windows(val_tokens.numel() - 1, args.train_seq_len, stride), rank, world_size)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    token_count = torch.zeros((), device=device, dtype=torch.float64)
    byte_count = torch.zeros((), device=device, dtype=torch.float64)
    base_model.eval()
    with torch.inference_mode():
        for batch, x, y, logits in window_batches(base_model, val_tokens, windows, args.train_seq_len, device, batch_seqs):
            logp = F.log_softmax(logits.double(), dim=-1)
            for i, (ws, s, wlen) in enumerate(batch):
                tgt = y[i, s:wlen]
                pos = np.arange(ws + s + 1, ws + wlen + 1)
                hint, beta, key = tilt_hints(val_np, pos, hint_table, hint_count, args)
                nll = tilted_nll(logp[i, s:wlen], tgt, hint, beta, has_leading_space_lut)
                loss_sum += nll.sum()
                token_count += float(wlen - s)
                byte_count += scored_bytes(x, y, i, s, wlen, luts).sum()
                update_hints(hint_table, hint_count, key, val_np[pos], pos >= args.tilt_order - 1)
    return to_metrics(loss_sum, token_count, byte_count)


def run_final_eval(args, base_model, rank, world_size, device, val_tokens, luts, log0) -> None:
    t0 = time.perf_counter()
    val_loss, val_bpb = eval_val_sliding_tilt(args, base_model, rank, world_size, device, val_tokens, *luts, stride=args.eval_stride, batch_seqs=args.eval_batch_seqs)
    log_metrics(log0, "final_int6_sliding_window_tilt", val_loss, val_bpb, t0, f" beta:{args.tilt_beta}")
