
TARGET_PRIME = np.uint64(2654435761)


def eval_val_sliding_ngram(
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
    """Sliding-window eval mixed with a backward-looking n-gram cache (tables hold scored tokens only)."""
    luts = (base_bytes_lut, has_leading_space_lut, is_boundary_token_lut)
    val_np = val_tokens.cpu().numpy().astype(np.int64)
    mask = np.uint64(args.ngram_buckets - 1)
    ctx_table = np.zeros(args.ngram_buckets, dtype=np.int64)
    full_table = np.zeros(args.ngram_buckets, dtype=np.int64)
    alpha = args.ngram_alpha
    windows = rank_share(sliding_windows(val_tokens.numel() - 1, args.train_seq_len, stride), rank, world_size)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    token_count = torch.zeros((), device=device, dtype=torch.float64)
    byte_count = torch.zeros((), device=device, dtype=torch.float64)
    base_model.eval()
    with torch.inference_mode():
        for batch, x, y, logits in window_batches(base_model, val_tokens, windows, args.train_seq_len, device, batch_seqs):
            logp = F.log_softmax(logits, dim=-1)
            for i, (ws, s, wlen) in enumerate(batch):
                tgt = y[i, s:wlen]
                p_model = logp[i, s:wlen].gather(-1, tgt[:, None]).squeeze(-1).exp().double().cpu().numpy()
                pos = np.arange(ws + s + 1, ws + wlen + 1)
                tgt_np = val_np[pos]
                ok = pos >= args.ngram_order - 1
                ctx_hash = context_hash(val_np, pos[ok], args.ngram_order)
                full_key = ((ctx_hash ^ (tgt_np[ok].astype(np.uint64) * TARGET_PRIME)) & mask).astype(np.int64)
                ctx_key = (ctx_hash & mask).astype(np.int64)
                ctx_count = ctx_table[ctx_key]
                full_count = full_table[full_key]
                p_ng = np.minimum(full_count, ctx_count) / np.maximum(ctx_count, 1)
                p = p_model.copy()
                p[ok] = np.where(ctx_count >= args.ngram_min_count, (1.0 - alpha) * p_model[ok] + alpha * p_ng, p_model[ok])
                loss_sum += float(-np.log(p).sum())
                token_count += float(wlen - s)
                byte_count += scored_bytes(x, y, i, s, wlen, luts).sum()
                # The cache learns these positions only after they have been scored.
                np.add.at(ctx_table, ctx_key, 1)
                np.add.at(full_table, full_key, 1)
    return to_metrics(loss_sum, token_count, byte_count)


def run_final_eval(args, base_model, rank, world_size, device, val_tokens, luts, log0) -> None:
    t0 = time.perf_counter()
    val_loss, val_bpb = eval_val_sliding_ngram(args, base_model, rank, world_size, device, val_tokens, *luts, stride=args.eval_stride, batch_seqs=args.eval_batch_seqs)
    log_metrics(log0, f"final_int6_sliding_window_ngram{args.ngram_order}", val_loss, val_bpb, t0, f" alpha:{args.ngram_alpha}")
