"""Constants under the launch: the value an expression has in the official run (the launch's
environment, module constants, class-level settings), or ``UNKNOWN``. Code under a condition that is
false there is analysed but marked disabled."""

from __future__ import annotations

import libcst as cst

from .tree import dotted, literal_value

UNKNOWN = object()
OFFICIAL_CAP_S = 600.0  # the training budget of the record track
ORDER_OPS = (cst.LessThan, cst.LessThanEqual, cst.GreaterThan, cst.GreaterThanEqual)


class ConstEval:
    """Numbers and constants of the walked code under the official run (a mixin of ``Walker``)."""

    def set_num(self, name: str, v) -> None:
        if self.disabled:
            return
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            self.nums[name] = v
        else:
            self.nums.pop(name, None)

    def num(self, node):
        """A number under the official run, following ``x -= reserve`` and ``a if test else b``."""
        t = type(node)
        if t is cst.Name and node.value in self.nums:
            return self.nums[node.value]
        if t is cst.IfExp:
            c = self.const(node.test)
            return UNKNOWN if c is UNKNOWN else self.num(node.body if c else node.orelse)
        if t is cst.BinaryOperation:
            a, b = self.num(node.left), self.num(node.right)
            if a is UNKNOWN or b is UNKNOWN:
                return UNKNOWN
            try:
                return _binop(node.operator, a, b)
            except Exception:  # noqa: BLE001
                return UNKNOWN
        return self.const(node)

    def cap_compared(self, cap_node) -> None:
        """An elapsed wall-clock time compared with a cap: the cap in seconds (a value of 10,000 or more
        is taken as milliseconds)."""
        v = self.num(cap_node)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            self.caps.append(v / 1000.0 if v >= 10_000 else float(v))

    def const(self, node, depth: int = 0):  # noqa: C901
        if depth > 12:
            return UNKNOWN
        t = type(node)
        if t is cst.Integer or t is cst.Float:
            return literal_value(node)
        if t in (cst.SimpleString, cst.ConcatenatedString):
            try:
                return literal_value(node)
            except Exception:  # noqa: BLE001
                return UNKNOWN
        if t is cst.Name:
            if node.value in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[node.value]
            if node.value in self.consts:
                return self.consts[node.value]
            return self.m.consts.get(node.value, UNKNOWN)
        if t is cst.Attribute:
            d = dotted(node)
            if d in self.consts:
                return self.consts[d]
            if isinstance(node.value, cst.Name) and node.value.value in ("os", "sys", "torch", "np", "math"):
                return UNKNOWN
            return self.p.attr_consts.get(node.attr.value, UNKNOWN)
        if t is cst.UnaryOperation:
            v = self.const(node.expression, depth + 1)
            if v is UNKNOWN:
                return UNKNOWN
            try:
                if isinstance(node.operator, cst.Not):
                    return not v
                if isinstance(node.operator, cst.Minus):
                    return -v
            except TypeError:
                return UNKNOWN
            return UNKNOWN
        if t is cst.BooleanOperation:
            a = self.const(node.left, depth + 1)
            if isinstance(node.operator, cst.And):
                if a is not UNKNOWN and not a:
                    return a
                b = self.const(node.right, depth + 1)
                return b if a is not UNKNOWN else (b if b is not UNKNOWN and not b else UNKNOWN)
            if a is not UNKNOWN and a:
                return a
            b = self.const(node.right, depth + 1)
            return b if a is not UNKNOWN else (b if b is not UNKNOWN and b else UNKNOWN)
        if t is cst.Comparison:
            left = self.const(node.left, depth + 1)
            result = True
            for c in node.comparisons:
                if isinstance(c.operator, (cst.In, cst.NotIn)) and dotted(c.comparator) in ("os.environ",):
                    right = self.p.env
                else:
                    right = self.const(c.comparator, depth + 1)
                if left is UNKNOWN or right is UNKNOWN:
                    return UNKNOWN
                try:
                    ok = _compare(c.operator, left, right)
                except TypeError:
                    return UNKNOWN
                if ok is UNKNOWN:
                    return UNKNOWN
                result = result and ok
                left = right
            return result
        if t is cst.BinaryOperation:
            a, b = self.const(node.left, depth + 1), self.const(node.right, depth + 1)
            if a is UNKNOWN or b is UNKNOWN:
                return UNKNOWN
            try:
                return _binop(node.operator, a, b)
            except Exception:  # noqa: BLE001 - a value we cannot compute is unknown
                return UNKNOWN
        if t is cst.IfExp:
            c = self.const(node.test, depth + 1)
            return UNKNOWN if c is UNKNOWN else self.const(node.body if c else node.orelse, depth + 1)
        if t is cst.Call:
            return self.const_call(node, depth)
        if t is cst.Subscript and dotted(node.value) == "os.environ" and len(node.slice) == 1 \
                and isinstance(node.slice[0].slice, cst.Index):
            k = self.const(node.slice[0].slice.value, depth + 1)
            return self.p.env.get(k, UNKNOWN) if isinstance(k, str) else UNKNOWN
        return UNKNOWN

    def const_call(self, node: cst.Call, depth: int):
        d = dotted(node.func)
        vals = [self.const(a.value, depth + 1) for a in node.args if a.keyword is None]
        if d in ("os.environ.get", "os.getenv", "environ.get", "getenv"):
            if not vals or not isinstance(vals[0], str):
                return UNKNOWN
            default = vals[1] if len(vals) > 1 else None
            return self.p.env.get(vals[0], default)
        if d in ("int", "float", "bool", "str") and len(vals) == 1 and vals[0] is not UNKNOWN:
            try:
                if d == "bool" and isinstance(vals[0], str):
                    return UNKNOWN
                return {"int": int, "float": float, "bool": bool, "str": str}[d](vals[0])
            except (TypeError, ValueError):
                return UNKNOWN
        if d in ("max", "min") and vals and UNKNOWN not in vals:
            try:
                return (max if d == "max" else min)(vals)
            except (TypeError, ValueError):
                return UNKNOWN
        if d == "getattr" and len(vals) >= 2 and isinstance(vals[1], str):
            # ``getattr(args, "name", default)``: the attribute, as ``args.name`` reads it
            return self.p.attr_consts.get(vals[1], UNKNOWN)
        if isinstance(node.func, cst.Attribute) and node.func.attr.value in ("lower", "strip") and not vals:
            base = self.const(node.func.value, depth + 1)
            return getattr(base, node.func.attr.value)() if isinstance(base, str) else UNKNOWN
        return UNKNOWN



def _compare(op, a, b):
    if isinstance(op, cst.Equal):
        return a == b
    if isinstance(op, cst.NotEqual):
        return a != b
    if isinstance(op, cst.LessThan):
        return a < b
    if isinstance(op, cst.LessThanEqual):
        return a <= b
    if isinstance(op, cst.GreaterThan):
        return a > b
    if isinstance(op, cst.GreaterThanEqual):
        return a >= b
    if isinstance(op, cst.In):
        return a in b
    if isinstance(op, cst.NotIn):
        return a not in b
    if isinstance(op, cst.Is):
        return a is b
    if isinstance(op, cst.IsNot):
        return a is not b
    return UNKNOWN


def _binop(op, a, b):
    if isinstance(op, cst.Add):
        return a + b
    if isinstance(op, cst.Subtract):
        return a - b
    if isinstance(op, cst.Multiply):
        if isinstance(a, str) or isinstance(b, str):
            raise TypeError
        return a * b
    if isinstance(op, cst.FloorDivide):
        return a // b
    if isinstance(op, cst.Divide):
        return a / b
    if isinstance(op, cst.Modulo) and not isinstance(a, str):
        return a % b
    if isinstance(op, cst.Power) and abs(b) < 64:
        return a ** b
    raise TypeError
