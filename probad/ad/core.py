"""Reverse and forward mode on top of the tracer, vector spaces, and the
``defvjp``/``defjvp`` registry that primitives' derivative rules go through."""
from __future__ import annotations

from collections.abc import MutableMapping

from .misuse import explain
from .tracer import (Box, Node, ReverseTrace, Trace, getval, isbox, new_box, primitive, trace, trace_scope,
                     traced_arguments)
from .wrap_util import func, subval

__all__ = [
    "make_vjp", "make_jvp", "backward", "vspace", "VSpace", "SparseObject",
    "defprimitive", "defvjp", "defvjp_rule", "defvjp_argnum", "defvjp_argnums", "defjvp", "defjvp_argnum",
    "defjvp_argnums", "def_linear",
    "add_outgrads", "sum_outgrads",
    "primitive_vjps", "primitive_jvps", "translate_vjp", "translate_jvp", "identity_vjp", "identity_jvp",
    # autograd.core re-exports these from its tracer and util modules.
    "primitive", "Box", "Node", "trace", "getval", "isbox", "func", "subval",
]


# --------------------------------------------------------------- reverse mode
def make_vjp(fun, x):
    """Trace ``fun`` at ``x``; return ``(vjp, fun(x))`` where ``vjp(g)`` is the
    vector-Jacobian product of the output cotangent ``g``."""
    with trace_scope(ReverseTrace) as trace:
        start = trace.new_start(x)
        end = _output(fun, start)
        if not isinstance(end, Box) or end._trace is not trace:
            def vjp(g):
                return vspace(x).zeros()

            return vjp, end
        tape = trace.tape
        end_index = end._node

    def vjp(g):
        out = backward(tape, end_index, g)
        return vspace(x).zeros() if out is None else out

    return vjp, end._value


def backward(tape, end, g):
    """Compose VJPs from the tape's entry ``end`` back to its start (position 0)."""
    grads = [None] * (end + 1)
    grads[end] = g
    # A sparse cotangent is added in place, so only into a buffer that this
    # pass made (a VJP's result may be shared with another entry, or be a
    # read-only broadcast view). Every sum made here is a new buffer, so a
    # position stays in ``owned`` once a sparse add has given it one.
    owned = set()
    for i in range(end, 0, -1):
        g = grads[i]
        if g is None:
            continue
        grads[i] = None  # free cotangents as soon as they are consumed
        fun, ans, args, kwargs, argnums, parents = tape[i]
        if type(parents) is int:  # one traced argument, stored as two ints (ReverseTrace.record)
            pg = _vjp(fun, argnums)(g, ans, *args, **kwargs) if kwargs else _vjp(fun, argnums)(g, ans, *args)
            _accumulate(grads, owned, parents, pg)
            continue
        for argnum, j in zip(argnums, parents):
            pg = _vjp(fun, argnum)(g, ans, *args, **kwargs) if kwargs else _vjp(fun, argnum)(g, ans, *args)
            _accumulate(grads, owned, j, pg)
    return grads[0]


def _accumulate(grads, owned, j, pg):
    """Add the cotangent ``pg`` into ``grads[j]``."""
    if type(pg) is SparseObject:
        grads[j] = _add_sparse(pg, grads[j], j in owned)
        owned.add(j)
    else:
        prev = grads[j]
        grads[j] = pg if prev is None else add_outgrads(prev, pg)


def _vjp(fun, argnum):
    try:
        return fun.vjps[argnum]
    except KeyError:
        raise NotImplementedError(
            f"reverse-mode derivative (VJP) of '{fun.__name__}' with respect to "
            f"argument {argnum} is not defined; define it with probad.ad.extend.defvjp"
        ) from None


def _output(fun, start):
    """``fun(start)``, packed into one box if it is a container; errors that
    numpy words in its own terms are explained (``misuse.explain``)."""
    try:
        end = fun(start)
    except (TypeError, ValueError) as exc:
        better = explain(exc)
        if better is None:
            raise
        raise better.with_traceback(exc.__traceback__) from None
    if end is None:
        raise TypeError(
            "the function being differentiated returned None: its output, not its input, is "
            "the problem. Return the value to differentiate (a missing `return`?)")
    return _pack(end)


def _pack(end):
    if isinstance(end, (tuple, list, dict)):
        from .builtins import pack  # containers build on core; import late to avoid a cycle

        return pack(end)
    return end


#: Value types whose ``+`` is vector addition (arrays, scalars, array boxes);
#: registered by the numpy layer so core stays numpy-agnostic.
plus_adds = set()


def add_outgrads(prev, new):
    """Sum two dense (co)tangents into a new value."""
    if type(prev) in plus_adds and type(new) in plus_adds:
        return prev + new
    return vspace(prev).add(prev, new)


def _add_sparse(sparse, dense, owned):
    """``dense + sparse`` (``dense`` None meaning zero) through ``sparse.mut_add``,
    which writes in place: into ``dense`` only if ``owned``, else into a copy."""
    vs = sparse.vs
    if dense is None:
        return sparse.mut_add(vs.zeros())
    return sparse.mut_add(dense if owned else vs.add(vs.zeros(), dense))


# --------------------------------------------------------------- forward mode
class ForwardTrace(Trace):
    """Forward mode: each box's ``_node`` is its tangent, pushed through every call."""

    def record(self, fun, ans, args, kwargs, argnums, boxes):
        argnums, boxes = traced_arguments(argnums, boxes)
        tangent = None
        for argnum, box in zip(argnums, boxes):
            g = box._node
            if g is None:
                continue
            try:
                rule = fun.jvps[argnum]
            except KeyError:
                raise NotImplementedError(
                    f"forward-mode derivative (JVP) of '{fun.__name__}' with respect to "
                    f"argument {argnum} is not defined; define it with probad.ad.extend.defjvp"
                ) from None
            out = rule(g, ans, *args, **kwargs)
            tangent = out if tangent is None else add_outgrads(tangent, out)
        return new_box(ans, self, tangent)


def make_jvp(fun, x):
    """Return ``jvp(v) -> (fun(x), J v)``, tracing ``fun`` once per call."""

    def jvp(g):
        with trace_scope(ForwardTrace) as trace:
            start = new_box(x, trace, g)
            end = _output(fun, start)
            if not isinstance(end, Box) or end._trace is not trace:
                return end, vspace(end).zeros()
            tangent = end._node
            if tangent is None:
                tangent = vspace(end._value).zeros()
            return end._value, tangent

    return jvp


# ----------------------------------------------------------- derivative rules
def defprimitive(fun: primitive, *, vjp=None, jvp=None, keeps=None, value_shaped=None,
                 may_raise=None, simplify=None, **lowerings) -> primitive:
    """Declare in one call everything probad knows about the primitive ``fun``.

    Each layer reads only its part: the backward pass the VJPs and ``keeps``,
    forward mode the JVPs, the compiler's recorder ``value_shaped`` and
    ``may_raise``, its optimiser ``simplify``, and each backend its own
    entry of ``lowerings``. Omitted parts stay as they are, so a primitive
    can also be declared in steps.

    Parameters
    ----------
    fun : primitive
        The primitive being declared.
    vjp, jvp : callable or tuple, optional
        The derivative rules ``(g, ans, *args, **kwargs) -> (co)tangent``,
        one per argument (a single rule is argument 0's), as
        :func:`defvjp_rule` and :func:`defjvp` take them (``None``: a zero
        derivative; ``"same"`` for a JVP: ``fun`` is linear there).
    keeps : callable, optional
        ``argnums -> (keep_ans, kept_arg_positions)``: what the VJP rules
        read of the result and of the arguments beyond shape and dtype, for
        the traced ``argnums``; the tape drops the rest.
    value_shaped : bool, optional
        Whether the result's *shape* may depend on the input values
        (``nonzero``); a compiled replay then checks it.
    may_raise : bool, optional
        Whether the call may raise on some values (a Cholesky factor); the
        compiler then keeps the call even when its result is unused.
    simplify : str, optional
        The name of a rewrite in ``compiler.codegen.SIMPLIFICATIONS`` that
        finds when a call returns an operand unchanged.
    **lowerings : str
        ``backend=spec``: how a compiled backend runs the primitive, e.g.
        ``native="unary:exp"`` (see ``compiler.native``).

    Returns
    -------
    primitive
        ``fun``.
    """
    if vjp is not None:
        defvjp_rule(fun, *(vjp if isinstance(vjp, tuple) else (vjp,)))
    if jvp is not None:
        defjvp(fun, *(jvp if isinstance(jvp, tuple) else (jvp,)))
    if keeps is not None:
        fun.vjp_keeps = keeps
    if value_shaped is not None:
        fun.value_shaped = value_shaped
    if may_raise is not None:
        fun.may_raise = may_raise
    if simplify is not None:
        fun.simplify = simplify
    if lowerings:
        fun.lowerings = {**fun.lowerings, **lowerings}
    return fun


def defvjp_argnum(fun: primitive, maker):
    """Define VJPs for every argument with one maker ``(argnum, ans, *args) -> vjp``."""

    class _AllArgs(dict):
        def __missing__(self, argnum):
            return lambda g, ans, *args, **kw: maker(argnum, ans, *args, **kw)(g)

    fun.vjps = _AllArgs(fun.vjps)


def defvjp_argnums(fun: primitive, maker):
    """Define VJPs with autograd's most general maker
    ``(argnums, ans, args, kwargs) -> (g -> cotangents, one per argnum)``.

    The backward pass asks for one argument at a time, so ``argnums`` always
    has one element here.
    """

    def one(argnum, ans, *args, **kwargs):
        vjp = maker((argnum,), ans, args, kwargs)
        return lambda g: next(iter(vjp(g)))

    defvjp_argnum(fun, one)


def defvjp(fun: primitive, *makers, argnums=None):
    """Register VJP makers ``(ans, *args, **kwargs) -> (g -> cotangent)``
    (autograd's form).

    ``None`` marks an argument as non-differentiable (zero derivative).
    """
    defvjp_rule(fun, *[None if maker is None else _rule_of_maker(maker) for maker in makers],
                argnums=argnums)


def defvjp_rule(fun: primitive, *rules, argnums=None):
    """Register VJP rules ``(g, ans, *args, **kwargs) -> cotangent``: the form
    the backward pass calls (the JVP rules' signature). Cheaper than a maker,
    which builds a closure per recorded call, when nothing is worth computing
    before ``g`` is known.

    ``None`` marks an argument as non-differentiable (zero derivative).
    """
    for argnum, rule in zip(argnums if argnums is not None else range(len(rules)), rules):
        fun.vjps[argnum] = rule if rule is not None else _zero_vjp(argnum)


def _rule_of_maker(maker):
    return lambda g, ans, *args, **kwargs: maker(ans, *args, **kwargs)(g)


def defjvp(fun: primitive, *rules, argnums=None):
    """Register JVP rules ``(g, ans, *args, **kwargs) -> tangent``.

    The string ``"same"`` reuses the function itself (for linear-in-that-argument
    maps such as ``reshape``); ``None`` marks a zero derivative.
    """
    for argnum, rule in zip(argnums if argnums is not None else range(len(rules)), rules):
        fun.jvps[argnum] = translate_jvp(rule, fun, argnum)


def defjvp_argnum(fun: primitive, rule):
    """Define JVPs for every argument with one rule ``(argnum, g, ans, *args)``."""

    class _AllArgs(dict):
        def __missing__(self, argnum):
            return lambda g, ans, *args, **kw: rule(argnum, g, ans, *args, **kw)

    fun.jvps = _AllArgs(fun.jvps)


def defjvp_argnums(fun: primitive, rule):
    """Define JVPs with autograd's most general rule
    ``(argnums, gs, ans, args, kwargs) -> tangent``, the sum over ``argnums``.

    Forward mode sums the tangents of the traced arguments itself, so the
    rule is asked about one argument at a time.
    """
    defjvp_argnum(fun, lambda argnum, g, ans, *args, **kw: rule((argnum,), (g,), ans, args, kw))


def def_linear(fun: primitive):
    """Declare ``fun`` linear in each argument, which defines its forward mode:
    the JVP is ``fun`` itself with the tangent in that argument's place.

    Reverse mode needs the transpose of the map, which ``fun`` does not give;
    define it with :func:`defvjp` (until then ``grad`` raises an error that
    names the function and the argument).
    """
    defjvp_argnum(fun, lambda argnum, g, ans, *args, **kw: _linear_jvp(fun, argnum)(g, ans, *args, **kw))


def _linear_jvp(fun, argnum):
    return lambda g, ans, *args, **kw: fun(*subval(args, argnum, g), **kw)


def _zero_vjp(argnum):
    return lambda g, ans, *args, **kwargs: vspace(args[argnum]).zeros()


def _zero_jvp(g, ans, *args, **kwargs):
    return vspace(ans).zeros()


def translate_vjp(maker, fun, argnum):
    """autograd's normal form of a VJP maker passed to :func:`defvjp`:
    ``None`` becomes the zero maker."""
    if maker is None:
        return lambda ans, *args, **kwargs: lambda g: vspace(args[argnum]).zeros()
    if callable(maker):
        return maker
    raise TypeError(f"bad VJP {maker!r} for '{fun.__name__}': pass a function or None")


def translate_jvp(rule, fun, argnum):
    """autograd's normal form of a JVP rule passed to :func:`defjvp`:
    ``None`` is a zero derivative, ``"same"`` the function itself (linear)."""
    if rule is None:
        return _zero_jvp
    if rule == "same":
        return _linear_jvp(fun, argnum)
    if callable(rule):
        return rule
    raise TypeError(f"bad JVP {rule!r} for '{fun.__name__}': pass a function, None or 'same'")


def identity_vjp(argnums, *args):
    """autograd's ``identity_vjp``: ``(argnums, ...) -> (g -> g)``."""
    return lambda g: g


def identity_jvp(g, *args, **kwargs):
    return g


def sum_outgrads(gs):
    """The sum of an iterable of (co)tangents (None if it is empty)."""
    total = None
    for g in gs:
        total = g if total is None else add_outgrads(total, g)
    return total


# ------------------------------------------------- autograd's rule registries
class _RuleRegistry(MutableMapping):
    """``primitive_vjps`` / ``primitive_jvps``: autograd's registries of
    derivative rules by primitive, as views of the rules that probad keeps on
    each primitive (``fun.vjps``, ``fun.jvps``).

    An entry has autograd's most general form: for VJPs a maker
    ``(argnums, ans, args, kwargs) -> (g -> cotangents, one per argnum)``, for
    JVPs a rule ``(argnums, gs, ans, args, kwargs) -> tangent``. Reading one
    gives a function over probad's rules; assigning one defines the rules
    (``defvjp_argnums``/``defjvp_argnums``); copying an entry from one
    primitive to another shares the rules, as in autograd.
    """

    def __init__(self, attribute, define, wrap):
        self._attribute = attribute
        self._define = define
        self._wrap = wrap

    def _rules(self, fun):
        rules = getattr(fun, self._attribute, None) if isinstance(fun, primitive) else None
        if not rules and not hasattr(type(rules), "__missing__"):
            raise KeyError(fun)
        return rules

    def __getitem__(self, fun):
        rules = self._rules(fun)
        entry = self._wrap(rules)
        entry.rules = rules  # what an assignment of this entry shares
        return entry

    def __setitem__(self, fun, entry):
        if not isinstance(fun, primitive):
            raise TypeError(f"{fun!r} is not a primitive; wrap it with probad.ad.extend.primitive first")
        rules = getattr(entry, "rules", None)
        if rules is not None:
            setattr(fun, self._attribute, rules)
        else:
            self._define(fun, entry)

    def __delitem__(self, fun):
        self._rules(fun)
        setattr(fun, self._attribute, {})

    def __iter__(self):
        return (fun for fun in list(primitive.instances) if self._has(fun))

    def __len__(self):
        return sum(1 for _ in self)

    def _has(self, fun):
        try:
            self._rules(fun)
        except KeyError:
            return False
        return True


def _vjp_entry(rules):
    def vjp_argnums(argnums, ans, args, kwargs):
        return lambda g: tuple(rules[argnum](g, ans, *args, **kwargs) for argnum in argnums)

    return vjp_argnums


def _jvp_entry(rules):
    def jvp_argnums(argnums, gs, ans, args, kwargs):
        return sum_outgrads(rules[argnum](g, ans, *args, **kwargs) for argnum, g in zip(argnums, gs))

    return jvp_argnums


primitive_vjps = _RuleRegistry("vjps", lambda fun, maker: defvjp_argnums(fun, maker), _vjp_entry)
primitive_jvps = _RuleRegistry("jvps", lambda fun, rule: defjvp_argnums(fun, rule), _jvp_entry)


# --------------------------------------------------------------- vector spaces
class VSpace:
    """The vector space a value lives in: what zero, one, a basis and a random
    direction look like, and how to add and take inner products. Gradients,
    ``jacobian`` and ``check_grads`` use it to stay agnostic of value types."""

    iscomplex = False
    mappings: dict = {}

    def zeros(self):
        raise NotImplementedError

    def ones(self):
        raise NotImplementedError

    def standard_basis(self):
        raise NotImplementedError

    def randn(self):
        raise NotImplementedError

    # The arithmetic delegates to underscored methods, autograd's protocol:
    # a space written for autograd defines ``_add``, ``_scalar_mul``,
    # ``_inner_prod``, ... and keeps these public names.
    def add(self, x, y):
        return self._add(x, y)

    def mut_add(self, x, y):
        return self._mut_add(x, y)

    def scalar_mul(self, x, a):
        return self._scalar_mul(x, a)

    def inner_prod(self, x, y):
        return self._inner_prod(x, y)

    def covector(self, x):
        return self._covector(x)

    def _add(self, x, y):
        return x + y

    def _mut_add(self, x, y):
        return self.add(x, y)

    def _scalar_mul(self, x, a):
        return x * a

    def _inner_prod(self, x, y):
        raise NotImplementedError

    def _covector(self, x):
        return x

    def examples(self):
        return self.standard_basis()

    def __eq__(self, other):
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __repr__(self):
        return f"{type(self).__name__}({self.__dict__})"

    @classmethod
    def register(cls, value_type, vspace_maker=None):
        VSpace.mappings[value_type] = vspace_maker or cls


def vspace(value) -> VSpace:
    """The :class:`VSpace` of ``value`` (looking through boxes)."""
    try:
        return VSpace.mappings[type(value)](value)
    except KeyError:
        if isinstance(value, Box):
            return vspace(value._value)
        raise TypeError(
            f"probad.ad can't differentiate with respect to a {type(value).__name__}; "
            "use numpy arrays, floats, complex numbers, or tuples/lists/dicts of them"
        ) from None


class SparseObject:
    """A cotangent that is cheaper to add than to build densely, such as the
    gradient of ``x[i]``; a VJP may return one (JVPs return dense tangents).

    Parameters
    ----------
    vs : VSpace
        The space of the dense cotangent.
    mut_add : callable ``dense -> dense``
        Adds this cotangent into ``dense`` in place and returns it. The
        backward pass only hands it a buffer that it allocated itself.
    """

    __slots__ = ("vs", "mut_add")

    def __init__(self, vs, mut_add):
        self.vs = vs
        self.mut_add = mut_add


VSpace.register(SparseObject, lambda x: x.vs)
