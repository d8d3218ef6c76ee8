import libcst as cst

from checks.static import flow
from checks.static.engine import Rule

_CAT = {"cat", "concat", "concatenate", "hstack"}
_DOC_KEYWORDS = ("cu_seqlens",)  # varlen attention kernels: document boundaries of a packed row
_MASK_KEYWORDS = {"attn_mask", "block_mask", "mask", "attention_mask"}


def _neg_int(node) -> bool:
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        return isinstance(node.expression, cst.Integer) and flow.literal_value(node.expression) >= 1
    return False


def _prev(node) -> bool:
    """``X[:, :-k]``: every position but the last k of the sequence axis (the previous tokens)."""
    if not isinstance(node, cst.Subscript) or len(node.slice) < 2:
        return False
    first, seq = node.slice[0].slice, node.slice[1].slice
    return isinstance(first, cst.Slice) and first.lower is None and first.upper is None \
        and isinstance(seq, cst.Slice) and seq.lower is None and seq.upper is not None and _neg_int(seq.upper)


def _name(func) -> str:
    return func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""


_ASSIGNS = (cst.Assign, cst.AugAssign, cst.AnnAssign)
_EQ = (cst.Equal, cst.NotEqual)


def _names(node) -> set[str]:
    out = set()
    for n in flow.walk(node):
        t = type(n)
        if t is cst.Name:
            out.add(n.value)
        elif t is cst.Attribute and type(n.value) is cst.Name and n.value.value == "self":
            out.add(flow.dotted(n))
    return out


def _is_eq_test(n) -> bool:
    return type(n) is cst.Comparison and any(type(c.operator) in _EQ for c in n.comparisons)


def _mixing(value) -> cst.CSTNode | None:
    """A sequence-axis shift combined with the current positions: ``cat([x[:, :1], x[:, :-1]])``,
    ``x[:, 1:] + g * x[:, :-1]`` inside a cat, ``F.pad(x[:, :-1], ...)``, ``roll(x, 1, dims=1)``."""
    for n in flow.walk(value):
        if type(n) is not cst.Call:
            continue
        name = _name(n.func)
        pos = [a.value for a in n.args if a.keyword is None]
        if name in _CAT and pos and any(_prev(x) for x in flow.walk(pos[0])):
            return n
        if name == "pad" and pos and _prev(pos[0]):
            return n
        if name == "roll":
            kw = {a.keyword.value: a.value for a in n.args if a.keyword is not None}
            dims = kw.get("dims", pos[2] if len(pos) > 2 else None)
            if isinstance(dims, cst.Integer) and flow.literal_value(dims) == 1:
                return n
    return None


class _Function:
    """Def-use facts of one function: which names derive from its parameters, from a comparison of
    token data (a document boundary), and where document structure reaches attention."""

    def __init__(self, f: flow.FunctionDef):
        self.f = f
        self.assigns: list[tuple[set[str], cst.CSTNode]] = []
        self.calls: list[cst.Call] = []
        self.attr_writes: list[cst.CSTNode] = []
        self._names_of: dict[int, set[str]] = {}
        self._compares: dict[int, bool] = {}
        self.has_eq = False  # an equality test anywhere in the body (else no name is a boundary)
        for n in flow.walk(f.node.body):
            kind = type(n)
            if kind in _ASSIGNS:
                if n.value is None:
                    continue
                targets = [t.target for t in n.targets] if kind is cst.Assign else [n.target]
                names = set()
                for t in targets:
                    names |= _names(t) if not isinstance(t, cst.Attribute) or flow.dotted(t).startswith("self.") \
                        else set()
                    if isinstance(t, cst.Attribute):
                        self.attr_writes.append(n.value)
                self.assigns.append((names, n.value))
            elif kind is cst.Call:
                self.calls.append(n)
                # in-place updates: g.masked_fill_(m, 0) makes g depend on m
                if type(n.func) is cst.Attribute and n.func.attr.value.endswith("_") \
                        and type(n.func.value) is cst.Name:
                    self.assigns.append(({n.func.value.value}, n))
            elif kind is cst.Comparison and not self.has_eq:
                self.has_eq = _is_eq_test(n)
        self.params = {p for p in f.params + f.kwonly if p != "self"}
        self._from_params = self._boundary = self._doc_params = None

    @property
    def from_params(self) -> set[str]:
        if self._from_params is None:
            self._from_params = self._closure(self.params, lambda v: False)
        return self._from_params

    @property
    def boundary(self) -> set[str]:
        if self._boundary is None:
            self._boundary = self._closure(set(), self._compares_tokens) if self.has_eq else set()
        return self._boundary

    @property
    def doc_params(self) -> set[str]:
        if self._doc_params is None:
            self._doc_params = {p for p in self.params if any(
                a.keyword is not None and a.keyword.value.startswith(_DOC_KEYWORDS) and p in self._value_names(a.value)
                for c in self.calls for a in c.args)}
        return self._doc_params

    def _closure(self, seed: set[str], direct) -> set[str]:
        out = set(seed)
        changed = True
        while changed:
            changed = False
            for names, value in self.assigns:
                if names - out and (direct(value) or self._value_names(value) & out):
                    out |= names
                    changed = True
        return out

    def _value_names(self, value) -> set[str]:
        key = id(value)  # the nodes asked about live in the function's tree, as long as this object
        if key not in self._names_of:
            self._names_of[key] = _names(value)
        return self._names_of[key]

    def _compares_tokens(self, value) -> bool:
        """``ids == BOS``, ``ids[:, 1:] != bos``, ``doc[:, :, None] == doc[:, None, :]``: equality tests on
        data derived from the function's inputs mark document boundaries."""
        if not self.has_eq:
            return False
        key = id(value)
        if key not in self._compares:
            self._compares[key] = any(_is_eq_test(n) and self._value_names(n) & self.from_params
                                      for n in flow.walk(value))
        return self._compares[key]

    def uses_boundary(self, node) -> bool:
        known = self.boundary | self.doc_params
        return bool(known and self._value_names(node) & known) or self._compares_tokens(node)

    def per_document(self) -> str | None:
        """How this forward attends within documents only, or None."""
        for c in self.calls:
            for a in c.args:
                if a.keyword is None:
                    continue
                k = a.keyword.value
                if k.startswith(_DOC_KEYWORDS) and not (isinstance(a.value, cst.Name) and a.value.value == "None"):
                    return f"`{k}=` of a varlen attention call"
                if k in _MASK_KEYWORDS and self.uses_boundary(a.value):
                    return f"an attention mask built from document boundaries (`{k}=`)"
        for v in self.attr_writes:
            if self.uses_boundary(v):
                return "an attention mask built from document boundaries"
        return None


def _submodules(module) -> dict[tuple[str, str], str]:
    """(class, attribute) -> class of the submodule built in ``__init__`` (``self.smear = SmearGate(d)``)."""
    out = {}
    for cls, methods in module.classes.items():
        init = methods.get("__init__")
        if init is None:
            continue
        for n in flow.walk(init.node.body):
            if type(n) is cst.Assign and isinstance(n.value, cst.Call) and isinstance(n.value.func, cst.Name) \
                    and n.value.func.value in module.classes:
                for t in n.targets:
                    if isinstance(t.target, cst.Attribute) and isinstance(t.target.value, cst.Name) \
                            and t.target.value.value == "self":
                        out[(cls, t.target.attr.value)] = n.value.func.value
    return out


def _callee(call: cst.Call, f: flow.FunctionDef, module, submodules) -> flow.FunctionDef | None:
    func = call.func
    if f.cls is None or not (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)
                             and func.value.value == "self"):
        return None
    k = submodules.get((f.cls, func.attr.value))
    return module.classes.get(k, {}).get("forward") if k else None


class BoundaryLeak(Rule):
    """A previous-token mixing (SmearGate, shift) crosses document starts while attention is per document.

    Why:
    A forward that packs several documents into one row and attends within each document only
    (``cu_seqlens`` of a varlen kernel, a mask built from BOS positions) claims that a document is scored
    from its own tokens. A token-mixing step over the whole row (``x[:, 1:] + g * x[:, :-1]``) not masked
    at BOS carries the last token of the neighbouring document into the next one's first position, and
    attention spreads it through that document; the neighbour in a packed batch need not even precede it
    in the stream (C1; the SmearGate leak found in the audit of #1797, fixed in #1851).

    Example:
        g = torch.sigmoid(self.smear_gate(x[:, 1:]))
        x = torch.cat([x[:, :1], x[:, 1:] + g * x[:, :-1]], dim=1)
        ...
        y = flash_attn_varlen_func(q, k, v, cu_seqlens_q=cu_seqlens, ...)

    Fix:
    Zero the mixing where the current token starts a document:
    ``g = g.masked_fill((input_ids[:, 1:] == BOS_ID).unsqueeze(-1), 0.0)``.
    """

    ID = "GA114"
    NAME = "boundary-leak"
    family = "boundary-leak"
    severity = "error"
    VALID = [
        # masked at BOS
        """
import torch
class GPT:
    def forward(self, input_ids, cu_seqlens):
        x = self.tok_emb(input_ids)
        g = torch.sigmoid(self.smear_gate(x[:, 1:]))
        keep = (input_ids[:, 1:] != 1).unsqueeze(-1).to(x.dtype)
        x = torch.cat([x[:, :1], x[:, 1:] + g * keep * x[:, :-1]], dim=1)
        for block in self.blocks:
            x = block(x, cu_seqlens=cu_seqlens)
        return self.head(x)
""",
        # the gate is masked in place before the mixing
        """
import torch
class GPT:
    def forward(self, input_ids, cu_seqlens=None):
        x = self.tok_emb(input_ids)
        g = self.lam * torch.sigmoid(self.smear_gate(x[:, 1:]))
        starts = (input_ids[:, 1:] == 1).unsqueeze(-1)
        g = g.masked_fill(starts, 0.0)
        x = torch.cat([x[:, :1], x[:, 1:] + g * x[:, :-1]], dim=1)
        return self.blocks(x, cu_seqlens=cu_seqlens)
""",
        # a plain causal stream: the previous token is part of the prefix
        """
import torch
class SmearGate:
    def forward(self, x):
        g = torch.sigmoid(self.gate)
        x_prev = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)
        return (1 - g) * x + g * x_prev
""",
        # the mixing submodule receives the document starts and masks with them
        """
import torch
class SmearGate:
    def forward(self, x, starts):
        g = torch.sigmoid(self.gate) * (~starts[:, 1:, None])
        return torch.cat([x[:, :1], x[:, 1:] + g * x[:, :-1]], dim=1)
class GPT:
    def __init__(self, dim):
        self.mix = SmearGate(dim)
    def forward(self, tokens, cu):
        h = self.mix(self.embed(tokens), tokens == 1)
        for layer in self.layers:
            h = layer(h, cu_seqlens=cu)
        return h
""",
    ]
    INVALID = [
        """
import torch
class GPT:
    def forward(self, input_ids, cu_seqlens=None, max_seqlen=0):
        x = self.tok_emb(input_ids)
        g = torch.sigmoid(self.smear_gate(x[:, 1:]))
        x = torch.cat([x[:, :1], x[:, 1:] + g * x[:, :-1]], dim=1)  # <- fires
        for block in self.blocks:
            x = block(x, cu_seqlens=cu_seqlens, max_seqlen=max_seqlen)
        return self.head(x)
""",
        """
import torch
import torch.nn.functional as F
class GPT:
    def forward(self, ids):
        h = self.tok_emb(ids)
        h = h + self.w * F.pad(h[:, :-1], (0, 0, 1, 0))  # <- fires
        seg = torch.cumsum((ids == 1).long(), dim=1)
        same = seg[:, :, None] == seg[:, None, :]
        for block in self.blocks:
            block.attn.doc_mask = same
            h = block(h)
        return h
""",
        # the mixing lives in a submodule that the per-document forward calls without the boundaries
        """
import torch
class SmearGate:
    def forward(self, x):
        g = torch.sigmoid(self.gate)
        return torch.cat([x[:, :1], x[:, 1:] + g * x[:, :-1]], dim=1)  # <- fires
class GPT:
    def __init__(self, dim):
        self.mix = SmearGate(dim)
    def forward(self, tokens, cu):
        h = self.mix(self.embed(tokens))
        for layer in self.layers:
            h = layer(h, cu_seqlens=cu)
        return h
""",
    ]

    def check_module(self, module, ctx):
        out = []
        funcs = list(module.functions.values()) + [f for ms in module.classes.values() for f in ms.values()]
        infos = {}

        def info_of(f):
            if f.qualname not in infos:
                infos[f.qualname] = _Function(f)
            return infos[f.qualname]

        def unmasked(f):
            sites = []
            self._sites(f, f.node.body, flow.Walker(ctx.prog, module, f), False, sites)
            return [(mix, disabled) for stmt, mix, disabled in sites if not info_of(f).uses_boundary(stmt)]

        submodules = _submodules(module)
        for f in funcs:
            info = info_of(f)
            how = info.per_document()
            if how is None:
                continue
            found = [(f, mix, disabled, "this forward") for mix, disabled in unmasked(f)]
            # a mixing module called by this forward without any document boundary (``self.smear(x)``)
            for call in info.calls:
                callee = _callee(call, f, module, submodules)
                if callee is not None and not info.uses_boundary(call):
                    found += [(callee, mix, disabled, f"its caller `{f.qualname}`") for mix, disabled in unmasked(callee)]
            for where, mix, disabled, who in found:
                text = " ".join(flow.code(mix).split())
                text = text if len(text) <= 90 else text[:87] + "..."
                out.append((mix, f"`{text}` mixes the previous position into each position across the whole packed "
                                 f"row, while {who} attends within documents ({how}); it is not masked at "
                                 f"document starts, so one document's last token reaches the next document (C1)",
                            {"disabled": disabled, "where": where.qualname}))
        return out

    def _sites(self, f, body, walker, disabled, out):
        stmts = body.body if hasattr(body, "body") else body
        if not isinstance(stmts, (list, tuple)):
            stmts = [stmts]
        for s in stmts:
            if isinstance(s, cst.SimpleStatementLine):
                for x in s.body:
                    value = getattr(x, "value", None)
                    if isinstance(x, (cst.Assign, cst.AugAssign, cst.AnnAssign, cst.Return, cst.Expr)) and value is not None:
                        mix = _mixing(value)
                        if mix is not None:
                            out.append((value, mix, disabled))
            elif isinstance(s, cst.If):
                c = walker.const(s.test)
                self._sites(f, s.body, walker, disabled or (c is not flow.UNKNOWN and not c), out)
                if s.orelse is not None:
                    off = disabled or (c is not flow.UNKNOWN and bool(c))
                    self._sites(f, [s.orelse] if isinstance(s.orelse, cst.If) else s.orelse.body, walker, off, out)
            elif isinstance(s, (cst.For, cst.While, cst.With, cst.Try)):
                self._sites(f, s.body, walker, disabled, out)
