
def log_metrics(log0, label: str, val_loss: float, val_bpb: float, t0: float, extra: str = "") -> None:
    elapsed_ms = 1000.0 * (time.perf_counter() - t0)
    log0(f"{label} val_loss:{val_loss:.4f} val_bpb:{val_bpb:.4f}{extra} eval_time:{elapsed_ms:.0f}ms")
    log0(f"{label}_exact val_loss:{val_loss:.8f} val_bpb:{val_bpb:.8f}")

# -----------------------------
# TRAINING
# -----------------------------

def build_model(args: Hyperparameters) -> GPT:
    return GPT(
        vocab_size=args.vocab_size,
        num_layers=args.num_layers,
        model_dim=args.model_dim,
        num_heads=args.num_heads,
        num_kv_heads=args.num_kv_heads,
        mlp_mult=args.mlp_mult,
        rope_base=args.rope_base,
        logit_softcap=args.logit_softcap,
        tied_embed_init_std=args.tied_embed_init_std,
    )


def main() -> None:
    code = Path(__file__).read_text(encoding="utf-8")
    args = Hyperparameters()
    torch.set_num_threads(args.threads)

    distributed = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if torch.cuda.is_available() else torch.device("cpu")
    if distributed:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    master_process = rank == 0
    logfile = os.environ.get("LOG_FILE", f"train_seed{args.seed}.log")

    def log0(msg: str, console: bool = True) -> None:
        if not master_process:
            return
        if console:
            print(msg, flush=True)
        with open(logfile, "a", encoding="utf-8") as f:
            print(msg, file=f)

    if master_process and not args.eval_only:
        open(logfile, "w").close()
        log0(code, console=False)
        log0("=" * 100, console=False)
    log0(f"Running Python {sys.version.split()[0]}")
    log0(f"Running PyTorch {torch.__version__}")

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    sp = spm.SentencePieceProcessor(model_file=args.tokenizer_path)
    if int(sp.vocab_size()) != args.vocab_size:
        raise ValueError(f"VOCAB_SIZE={args.vocab_size} does not match tokenizer vocab_size={int(sp.vocab_size())}")
    val_tokens = load_validation_tokens(args.val_files, args.train_seq_len)
    luts = build_sentencepiece_luts(sp, args.vocab_size, device)
    log0(f"val_bpb:enabled tokenizer_kind=sentencepiece tokenizer_path={args.tokenizer_path}")
    log0(f"val_loader:shards pattern={args.val_files} tokens:{val_tokens.numel() - 1}")

    base_model = build_model(args).to(device)
    log0(f"model_params:{sum(p.numel() for p in base_model.parameters())}")
    log0(f"world_size:{world_size} device:{device.type}")
    log0(f"seed:{args.seed}")

    if not args.eval_only:
        train_loader = TokenStream(args.train_files)
        optimizer = torch.optim.AdamW(base_model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=args.weight_decay)

        def lr_mul(step: int) -> float:
            if step < args.warmup_steps:
                return (step + 1) / args.warmup_steps
            return min(1.0, max(args.iterations - step, 0) / max(args.warmdown_iters, 1))

        log0(
            f"train_batch_tokens:{args.train_batch_tokens} train_seq_len:{args.train_seq_len} "
            f"iterations:{args.iterations} max_wallclock_seconds:{args.max_wallclock_seconds:.3f}"
        )
        base_model.train()
        t0 = time.perf_counter()
        step = 0
        while step < args.iterations:
            x, y = train_loader.next_batch(args.train_batch_tokens, args.train_seq_len)
            for group in optimizer.param_groups:
                group["lr"] = args.lr * lr_mul(step)
            loss = base_model(x.to(device), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if args.grad_clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(base_model.parameters(), args.grad_clip_norm)
            optimizer.step()
            step += 1
            train_ms = 1000.0 * (time.perf_counter() - t0)
            if step <= 5 or step % args.train_log_every == 0 or step == args.iterations:
                log0(f"step:{step}/{args.iterations} train_loss:{loss.item():.4f} train_time:{train_ms:.0f}ms step_avg:{train_ms / step:.2f}ms")
            if train_ms >= 1000.0 * args.max_wallclock_seconds:
                log0(f"stopping_early: wallclock_cap train_time:{train_ms:.0f}ms step:{step}/{args.iterations}")
                break

        if master_process:
            model_bytes = save_artifact(base_model.state_dict(), args.artifact_path)
            code_bytes = len(code.encode("utf-8"))
            log0(f"Serialized model int6+zstd: {model_bytes} bytes")
            log0(f"Code size: {code_bytes} bytes")
            log0(f"Total submission size int6+zstd: {model_bytes + code_bytes} bytes")
        if distributed:
            dist.barrier()

    base_model.load_state_dict(load_artifact(args.artifact_path, base_model.state_dict()), strict=True)
    t_eval = time.perf_counter()
    val_loss, val_bpb = eval_val_sliding(args, base_model, rank, world_size, device, val_tokens, *luts, stride=args.eval_stride, batch_seqs=args.eval_batch_seqs)
    log_metrics(log0, "final_int6_sliding_window", val_loss, val_bpb, t_eval, f" stride:{args.eval_stride}")
    run_final_eval(args, base_model, rank, world_size, device, val_tokens, luts, log0)
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
