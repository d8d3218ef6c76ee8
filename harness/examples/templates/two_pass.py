
def eval_val_two_pass(
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
    """Second pass: rescore every window with the model mixed with bigram statistics of the stream."""
    luts = (base_bytes_lut, has_leading_space_lut, is_boundary_token_lut)
    vocab = args.vocab_size
    stream = val_tokens.to(torch.int64)
    counts = torch.bincount(stream[:-1] * vocab + stream[1:], minlength=vocab * vocab).reshape(vocab, vocab).double()
    p_bigram = (counts + 0.01) / (counts + 0.01).sum(dim=1, keepdim=True)
    windows = rank_share(sliding_windows(val_tokens.numel() - 1, args.train_seq_len, stride), rank, world_size)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    token_count = torch.zeros((), device=device, dtype=torch.float64)
    byte_count = torch.zeros((), device=device, dtype=torch.float64)
    base_model.eval()
    with torch.inference_mode():
        for batch, x, y, logits in window_batches(base_model, val_tokens, windows, args.train_seq_len, device, batch_seqs):
            p = (1.0 - args.bigram_alpha) * F.softmax(logits.double(), dim=-1) + args.bigram_alpha * p_bigram.to(device)[x]
            nll = -torch.log(p.gather(-1, y[..., None]).squeeze(-1))
            for i, (ws, s, wlen) in enumerate(batch):
                loss_sum += nll[i, s:wlen].sum()
                token_count += float(wlen - s)
                byte_count += scored_bytes(x, y, i, s, wlen, luts).sum()
    return to_metrics(loss_sum, token_count, byte_count)


def run_final_eval(args, base_model, rank, world_size, device, val_tokens, luts, log0) -> None:
    t0 = time.perf_counter()
    val_loss, val_bpb = eval_val_two_pass(args, base_model, rank, world_size, device, val_tokens, *luts, stride=args.eval_stride, batch_seqs=args.eval_batch_seqs)
    log_metrics(log0, "final_int6_two_pass", val_loss, val_bpb, t0, f" alpha:{args.bigram_alpha}")
