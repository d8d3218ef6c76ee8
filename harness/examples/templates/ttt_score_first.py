
def ttt_chunk_step(base_model, optimizer, span, windows, is_last, args, device, val_tokens, luts, sums) -> None:
    # Score first under inference_mode; only then train on the chunk (never on the last one).
    score_windows(base_model, val_tokens, windows, args, device, luts, sums)
    if not is_last:
        ttt_train_span(base_model, optimizer, span, args, device)
