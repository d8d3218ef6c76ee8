
def ttt_train_span(base_model: nn.Module, optimizer: torch.optim.Optimizer, span: Tensor, args, device) -> None:
    """One pass of next-token training over a span of validation tokens."""
    seq_len = args.train_seq_len
    n = (span.numel() - 1) // seq_len
    if n == 0:
        return
    x_all = span[: n * seq_len].reshape(n, seq_len).to(device)
    y_all = span[1 : n * seq_len + 1].reshape(n, seq_len).to(device)
    base_model.train()
    for _ in range(args.ttt_epochs):
        for bi in range(0, n, args.ttt_batch_seqs):
            loss = base_model(x_all[bi : bi + args.ttt_batch_seqs], y_all[bi : bi + args.ttt_batch_seqs])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    base_model.eval()


def score_windows(base_model: nn.Module, val_tokens: Tensor, windows, args, device, luts, sums) -> None:
    loss_sum, token_count, byte_count = sums
    with torch.inference_mode():
        for batch, x, y, logits in window_batches(base_model, val_tokens, windows, args.train_seq_len, device, args.eval_batch_seqs):
            nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none").reshape(y.shape)
            for i, (ws, s, wlen) in enumerate(batch):
                loss_sum += nll[i, s:wlen].to(torch.float64).sum()
                token_count += float(wlen - s)
                byte_count += scored_bytes(x, y, i, s, wlen, luts).sum()


def eval_val_ttt(args, base_model, rank, world_size, device, val_tokens, base_bytes_lut, has_leading_space_lut, is_boundary_token_lut, stride) -> tuple[float, float]:
    """Chunked test-time training over the validation stream, scored with sliding windows."""
    luts = (base_bytes_lut, has_leading_space_lut, is_boundary_token_lut)
    total = val_tokens.numel() - 1
    windows = sliding_windows(total, args.train_seq_len, stride)
    num_chunks = (total + args.ttt_chunk_tokens - 1) // args.ttt_chunk_tokens
    chunk_windows = [[] for _ in range(num_chunks)]
    for w in windows:
        chunk_windows[(w[0] + w[1]) // args.ttt_chunk_tokens].append(w)
    optimizer = torch.optim.SGD(base_model.parameters(), lr=args.ttt_lr, momentum=0.9)
    sums = tuple(torch.zeros((), device=device, dtype=torch.float64) for _ in range(3))
    for c in range(num_chunks):
        span = val_tokens[c * args.ttt_chunk_tokens : min((c + 1) * args.ttt_chunk_tokens, total) + 1]
        ttt_chunk_step(base_model, optimizer, span, rank_share(chunk_windows[c], rank, world_size), c == num_chunks - 1, args, device, val_tokens, luts, sums)
    return to_metrics(*sums)


def run_final_eval(args, base_model, rank, world_size, device, val_tokens, luts, log0) -> None:
    t0 = time.perf_counter()
    val_loss, val_bpb = eval_val_ttt(args, base_model, rank, world_size, device, val_tokens, *luts, stride=args.eval_stride)
    log_metrics(log0, "final_int6_ttt", val_loss, val_bpb, t0, f" chunk:{args.ttt_chunk_tokens} lr:{args.ttt_lr}")
