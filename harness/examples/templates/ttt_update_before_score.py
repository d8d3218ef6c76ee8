
def ttt_chunk_step(base_model, optimizer, span, windows, is_last, args, device, val_tokens, luts, sums) -> None:
    # Adapt to the chunk, then score the chunk with the adapted weights.
    ttt_train_span(base_model, optimizer, span, args, device)
    score_windows(base_model, val_tokens, windows, args, device, luts, sums)
