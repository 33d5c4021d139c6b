"""The SDPA rewrite: a hand-written softmax(q·kᵀ)·v replaced by `F.scaled_dot_product_attention`.

`attention_chain` reads one attention site (`document.attention`) as straight-line code and says
whether `scaled_dot_product_attention` computes exactly the same thing:

    att = q @ k.transpose(-2, -1) [* scale | / scale]        one product, the last two axes of k swapped
    att = att.masked_fill(<cond>, float("-inf"))  |  att + <mask>     at most one mask
    att = F.softmax(att, dim=-1)                               no dtype, the last axis
    att = self.attn_dropout(att)  |  F.dropout(att, p, training=...)  optional
    y = att @ v

The steps may be nested in one expression or spread over consecutive statements of one block,
and `if mask is not None: att = att + mask` counts as the additive mask. Every intermediate value
must be read exactly once, by the next step: attention weights that are returned, logged or read
later (`output_attentions`) keep the manual path. A fill that is not -inf (a finite `-1e9` gives
fully masked rows a uniform distribution, SDPA gives NaN), a bias that is not named as a mask
(relative positions, ALiBi), a cast, a second mask or anything else unrecognised: no chain.

A causal mask (a `torch.tril(torch.ones(n, n))` buffer sliced `[:, :, :T, :T]`, or `torch.triu(...,
diagonal=1)`) becomes `is_causal=True`. The scale becomes SDPA's default when it is
`1/sqrt(q or k .size(-1))`, `scale=<expr>` when it is another Python number, and `scale=1.0` when
q or k were scaled before the product (the facts say so, and the chain itself holds no scale).

`sdpa_fix` turns a chain into a Fix: the chain's statements, from the first to the product with
`v`, become the final statement with `F.scaled_dot_product_attention(q, k, v, ...)` in place of
`att @ v`; its trailing shape comment stays.
"""

from __future__ import annotations

import ast
import keyword as python_keywords
import re
from bisect import bisect_left
from dataclasses import dataclass

from llmarch_lsp.document import Document
from llmarch_lsp.facts.attention import AttentionSite, ScoreProduct
from llmarch_lsp.facts.index import walk
from llmarch_lsp.facts.modules import is_self_attribute
from llmarch_lsp.findings import Span
from llmarch_lsp.fixes.builders import cited_comment
from llmarch_lsp.fixes.model import UNSAFE, AddImport, Fix, Replace
from llmarch_lsp.fixes.scopes import assignments, loads, per_document
from llmarch_lsp.fixes.shapes import block_of, ends_its_line, rank, scores_shape, starts_its_line

SDPA = "torch.nn.functional.scaled_dot_product_attention"
SDPA_TITLE = "Use scaled_dot_product_attention (fused, O(T) memory)"

# Calls that mean the code already has a fused attention path beside the manual one.
_FUSED_ATTENTION = re.compile(
    r"scaled_dot_product_attention|flash_attn|flash_attention|memory_efficient_attention|flex_attention|sdpa",
    re.IGNORECASE,
)
_SOFTMAX_FUNCTIONS = {"torch.softmax", "torch.nn.functional.softmax", "torch.special.softmax"}
_MATMUL_FUNCTIONS = {"torch.matmul", "torch.bmm"}
_DROPOUT_FUNCTIONS = {"torch.nn.functional.dropout", "torch.dropout"}
_INFINITIES = {"math.inf", "torch.inf", "numpy.inf", "float('inf')"}
_MASK_NAME = re.compile(r"mask", re.IGNORECASE)
# Methods that leave q, k or v's values alone: repeating them in the SDPA call computes the same.
_VIEW_METHODS = {"transpose", "permute", "contiguous", "view", "reshape", "unsqueeze", "squeeze", "expand", "flatten"}
_LAST_AXES = {(-2, -1), (-1, -2)}
_LINE_LIMIT = 100


@dataclass(frozen=True)
class AttentionChain:
    """A softmax(q·kᵀ)·v that SDPA computes exactly, and the SDPA arguments that say so."""

    statements: tuple[ast.stmt, ...]  # consecutive statements of one block, first to last
    output: ast.expr  # `att @ v` (or `torch.matmul(att, v)`) in the last statement
    product: ScoreProduct
    query: ast.expr
    key: ast.expr  # k as SDPA takes it: `k`, not `k.transpose(-2, -1)`
    value: ast.expr
    scale: str | None  # None: SDPA's default 1/sqrt(q.size(-1))
    attn_mask: str | None
    is_causal: bool
    dropout_p: str | None
    # `n` in the causal mask's `torch.tril(torch.ones(n, n))`: the longest sequence, when built so.
    causal_size: ast.expr | None

    @property
    def first(self) -> ast.stmt:
        return self.statements[0]


def uses_fused_attention(document: Document, node: ast.AST) -> bool:
    """Whether the class (or function) holding `node` already calls SDPA, FlashAttention and the like."""
    scope = document.index.enclosing(node, ast.ClassDef) or document.index.enclosing_function(node)
    first, last = (1, len(document.lines)) if scope is None else (scope.lineno, scope.end_lineno or scope.lineno)
    lines = per_document(document, "fused-calls", lambda: _fused_call_lines(document))
    position = bisect_left(lines, first)
    return position < len(lines) and lines[position] <= last


def _fused_call_lines(document: Document) -> list[int]:
    """Lines of calls named like fused attention, from the index's calls grouped by callee name."""
    return sorted(
        call.lineno
        for name, calls in document.index.calls_by_name.items()
        if _FUSED_ATTENTION.search(name)
        for call in calls
    )


def attention_chain(document: Document, site: AttentionSite) -> AttentionChain | None:
    """The site as an exact SDPA chain, or None when SDPA would compute something else (read once
    per site: LLM101 and LLM103 both ask)."""
    return per_document(document, ("chain", id(site.softmax)), lambda: _chain(document, site))


def _chain(document: Document, site: AttentionSite) -> AttentionChain | None:
    if len(site.scores) != 1:
        return None
    product = site.scores[0]
    function = document.index.enclosing(product.node, ast.FunctionDef, ast.AsyncFunctionDef)
    if function is None:
        return None
    return _ChainReader(document, site, product, function).read()


def sdpa_fix(document: Document, chain: AttentionChain) -> Fix:
    """Replace the chain by one call of `scaled_dot_product_attention`, in the file's own spelling
    (built once per chain: LLM101 offers it as an alternative, LLM103 as its fix)."""
    return per_document(document, ("sdpa-fix", id(chain)), lambda: _sdpa_fix(document, chain))


def _sdpa_fix(document: Document, chain: AttentionChain) -> Fix:
    callee = document.imports.local_name_for(SDPA)
    imports: tuple[AddImport, ...] = ()
    if callee is None:
        callee = "scaled_dot_product_attention"
        imports = (AddImport("torch.nn.functional", "scaled_dot_product_attention"),)
    arguments = [document.segment(chain.query), document.segment(chain.key), document.segment(chain.value)]
    if chain.attn_mask is not None:
        arguments.append(f"attn_mask={chain.attn_mask}")
    if chain.dropout_p is not None:
        arguments.append(f"dropout_p={chain.dropout_p}")
    if chain.is_causal:
        arguments.append("is_causal=True")
    if chain.scale is not None:
        arguments.append(f"scale={chain.scale}")

    first, last = chain.first, chain.statements[-1]
    first_span, last_span, output_span = document.span_of(first), document.span_of(last), document.span_of(chain.output)
    output_span = _without_grouping_parentheses(document, output_span)
    prefix = document.text_in(Span(last_span.line, last_span.column, output_span.line, output_span.column))
    after = document.line_text(output_span.end_line)[output_span.end_column :].split("#")[0].rstrip()
    indentation = document.indentation_of(first.lineno)
    call = f"{callee}({', '.join(arguments)})"
    limit = _line_limit(document)
    if len(indentation) + len(prefix.splitlines()[-1] if prefix else "") + len(call) + len(after) > limit:
        # Wrapped the way nanoGPT and Hugging Face wrap it: all arguments on one line, else one per line.
        inner = indentation + _indent_unit(document, first)
        if len(inner) + len(", ".join(arguments)) <= limit:
            call = f"{callee}(\n{inner}{', '.join(arguments)}\n{indentation})"
        else:
            call = f"{callee}(\n" + "".join(f"{inner}{argument},\n" for argument in arguments) + f"{indentation})"
    replacement = Replace(
        Span(first_span.line, first_span.column, output_span.end_line, output_span.end_column), prefix + call
    )
    shape = scores_shape(document, chain.query, chain.key, chain.product.node) or "(B, H, T, T)"
    if chain.scale is None:
        reason = (
            f"Fused attention: scaled_dot_product_attention scales by 1/sqrt(d_head) itself and never "
            f"materializes the {shape} scores, O(T) memory instead of O(T^2)"
        )
    else:
        reason = (
            f"Fused attention: scaled_dot_product_attention computes the same softmax without "
            f"materializing the {shape} scores, O(T) memory instead of O(T^2)"
        )
    return Fix(
        title=SDPA_TITLE,
        applicability=UNSAFE,
        replacements=(replacement,),
        comments=(cited_comment(first.lineno, reason, "dao2022flashattention"),),
        imports=imports,
    )


def _without_grouping_parentheses(document: Document, span: Span) -> Span:
    """`(att @ v).transpose(1, 2)`: the parentheses group the product; a call needs none, so they go too."""
    before = document.line_text(span.line)[: span.column]
    after = document.line_text(span.end_line)[span.end_column :]
    stripped = before.rstrip()
    if stripped.endswith("(") and after.lstrip().startswith(")"):
        preceding = stripped[:-1].rstrip()
        word = re.search(r"\w+$", preceding)
        if not preceding or (word and python_keywords.iskeyword(word.group())) or not (word or preceding[-1] in ")]\"'"):
            column = len(stripped) - 1
            end_column = span.end_column + (len(after) - len(after.lstrip())) + 1
            return Span(span.line, column, span.end_line, end_column)
    return span


def _line_limit(document: Document) -> int:
    """100 columns, or the file's own longest line up to 120: a call is wrapped only where the file would."""
    longest = per_document(document, "longest-line", lambda: max(map(len, document.lines), default=0))
    return max(_LINE_LIMIT, min(longest, 120))


def _indent_unit(document: Document, statement: ast.stmt) -> str:
    """The file's indentation step: the statement's indentation minus its block owner's."""
    own = document.indentation_of(statement.lineno)
    owner = document.index.parent(statement)
    if owner is not None and hasattr(owner, "lineno"):
        outer = document.indentation_of(owner.lineno)
        if own.startswith(outer) and len(own) > len(outer):
            return own[len(outer) :]
    return "    "


# ---- reading a chain -----------------------------------------------------------------------

class _Step:
    """A value of the chain. Copied before each attempt to extend it, so a failed attempt leaves
    the binding as it was (a shallow copy, as `copy.copy` makes, without its generic protocol)."""

    def copy(self):
        twin = object.__new__(self.__class__)
        twin.__dict__.update(self.__dict__)
        return twin


class _Scores(_Step):
    """q·kᵀ with what was applied to it so far."""

    def __init__(self):
        self.scale: str | None = None
        self.scale_is_default = False
        self.fill_condition: ast.expr | None = None
        self.additive_mask: str | None = None


class _Probabilities(_Step):
    def __init__(self, scores: _Scores):
        self.scores = scores
        self.dropout_p: str | None = None
        self.dropped = False


class _Output(_Step):
    def __init__(self, probabilities: _Probabilities, value: ast.expr):
        self.probabilities = probabilities
        self.value = value


class _Unsupported(Exception):
    """The chain holds something SDPA does not compute exactly."""


class _ChainReader:
    def __init__(self, document: Document, site: AttentionSite, product: ScoreProduct, function: ast.AST):
        self.document = document
        self.site = site
        self.product = product
        self.function = function
        self.environment: dict[str, object] = {}
        self.consumed: set[int] = set()  # Name nodes read as a step of the chain
        self.softmax_seen = False

    def read(self) -> AttentionChain | None:
        try:
            return self._read()
        except _Unsupported:
            return None

    def _read(self) -> AttentionChain | None:
        first = self.document.index.enclosing_statement(self.product.node)
        block = block_of(self.document, first)
        if block is None:
            return None
        statements: list[ast.stmt] = []
        output = None
        for statement in block[next(i for i, s in enumerate(block) if s is first) :]:
            if not starts_its_line(self.document, statement) or not ends_its_line(self.document, statement):
                return None
            statements.append(statement)
            output = self._statement(statement)
            if output is not None:
                break
        if output is None or not self.softmax_seen:
            return None
        output_node, result = output
        self._check_reads(statements)
        scores = result.probabilities.scores
        mask, causal, causal_size = self._mask(scores)
        scale = scores.scale
        if scale is None and self.site.scaling is not None:
            scale = "1.0"  # q or k arrive scaled: SDPA must not scale again
        elif scores.scale_is_default:
            scale = None
        return AttentionChain(
            statements=tuple(statements),
            output=output_node,
            product=self.product,
            query=self.product.query,
            key=self.product.key_base,
            value=result.value,
            scale=scale,
            attn_mask=mask,
            is_causal=causal,
            dropout_p=result.probabilities.dropout_p,
            causal_size=causal_size,
        )

    # ---- statements --------------------------------------------------------------------
    def _statement(self, statement: ast.stmt):
        """Bind a chain step, or return (output node, _Output) for the statement that ends the chain."""
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name):
            consumed = set(self.consumed)
            try:
                value = self._value(statement.value)
            except _Unsupported:
                value = None
            if isinstance(value, (_Scores, _Probabilities)):
                self.environment[statement.targets[0].id] = value
                return None
            if isinstance(value, _Output):
                return statement.value, value
            self.consumed = consumed
            return self._output_inside(statement)
        if isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name):
            current = self._read_name(statement.target, store=True)
            if not isinstance(current, _Scores):
                raise _Unsupported
            if isinstance(statement.op, ast.Mult):
                self._scale(current, statement.value, divide=False)
            elif isinstance(statement.op, ast.Div):
                self._scale(current, statement.value, divide=True)
            elif isinstance(statement.op, ast.Add):
                self._add_mask(current, statement.value)
            else:
                raise _Unsupported
            self.environment[statement.target.id] = current
            return None
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
            call = statement.value
            func = call.func
            if isinstance(func, ast.Attribute) and func.attr == "masked_fill_" and isinstance(func.value, ast.Name):
                current = self._read_name(func.value)
                if not isinstance(current, _Scores):
                    raise _Unsupported
                self.environment[func.value.id] = self._fill(current, call)
                return None
            raise _Unsupported
        if isinstance(statement, ast.If):
            self._guarded_mask(statement)
            return None
        return self._output_inside(statement)

    def _output_inside(self, statement: ast.stmt):
        """`y = (att @ v).transpose(1, 2)`, `return torch.matmul(weights, value)`: the product with v."""
        if not isinstance(statement, (ast.Assign, ast.AnnAssign, ast.Return, ast.AugAssign)):
            raise _Unsupported
        for node in walk(statement):
            if _is_product_shaped(self.document, node):
                consumed = set(self.consumed)
                try:
                    value = self._value(node)
                except _Unsupported:
                    value = None
                if isinstance(value, _Output):
                    return node, value
                self.consumed = consumed
        raise _Unsupported

    def _guarded_mask(self, statement: ast.If):
        """`if mask is not None: att = att + mask`: SDPA takes `attn_mask=mask`, None included."""
        test = statement.test
        if statement.orelse or len(statement.body) != 1:
            raise _Unsupported
        if not (
            isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name)
            and len(test.ops) == 1
            and isinstance(test.ops[0], ast.IsNot)
            and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value is None
        ):
            raise _Unsupported
        mask_name = test.left.id
        inner = statement.body[0]
        if isinstance(inner, ast.AugAssign) and isinstance(inner.op, ast.Add) and isinstance(inner.target, ast.Name):
            target, added = inner.target, inner.value
            current = self._read_name(target, store=True)
        elif (
            isinstance(inner, ast.Assign)
            and len(inner.targets) == 1
            and isinstance(inner.targets[0], ast.Name)
            and isinstance(inner.value, ast.BinOp)
            and isinstance(inner.value.op, ast.Add)
        ):
            target = inner.targets[0]
            left, right = inner.value.left, inner.value.right
            if isinstance(left, ast.Name) and left.id == target.id:
                current, added = self._read_name(left), right
            elif isinstance(right, ast.Name) and right.id == target.id:
                current, added = self._read_name(right), left
            else:
                raise _Unsupported
        else:
            raise _Unsupported
        if not isinstance(current, _Scores) or not (isinstance(added, ast.Name) and added.id == mask_name):
            raise _Unsupported
        self._add_mask(current, added)
        self.environment[target.id] = current

    # ---- expressions -------------------------------------------------------------------
    def _value(self, node: ast.AST):
        """What `node` is in the chain (_Scores, _Probabilities, _Output), or None for a leaf."""
        if node is self.product.node:
            if not self._exact_product():
                raise _Unsupported
            return _Scores()
        if isinstance(node, ast.Name):
            if node.id in self.environment:
                return self._read_name(node)
            return None
        if isinstance(node, ast.BinOp):
            return self._binary(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        return None  # a leaf; a leaf that reads a chain value fails the final read check

    def _binary(self, node: ast.BinOp):
        left, right = self._value(node.left), self._value(node.right)
        if isinstance(node.op, ast.Mult):
            if isinstance(left, _Scores) and right is None:
                return self._scale(left, node.right, divide=False)
            if isinstance(right, _Scores) and left is None:
                return self._scale(right, node.left, divide=False)
        elif isinstance(node.op, ast.Div) and isinstance(left, _Scores) and right is None:
            return self._scale(left, node.right, divide=True)
        elif isinstance(node.op, ast.Add):
            if isinstance(left, _Scores) and right is None:
                return self._add_mask(left, node.right)
            if isinstance(right, _Scores) and left is None:
                return self._add_mask(right, node.left)
        elif isinstance(node.op, ast.MatMult) and isinstance(left, _Probabilities) and right is None:
            return self._output(left, node.right)
        if left is None and right is None:
            return None
        raise _Unsupported

    def _call(self, call: ast.Call):
        """A chain step written as a call, or None for a leaf. A call that takes a chain value but
        is no step (a cast, a head-mixing projection) ends the chain."""
        func = call.func
        qualified = self.document.qualified_name(func)
        if call is self.site.softmax:
            return self._softmax(call)
        if qualified in _MATMUL_FUNCTIONS and len(call.args) == 2 and not call.keywords:
            probabilities, value = self._value(call.args[0]), self._value(call.args[1])
            if isinstance(probabilities, _Probabilities) and value is None:
                return self._output(probabilities, call.args[1])
            if probabilities is not None or value is not None:
                raise _Unsupported
            return None
        if qualified in _DROPOUT_FUNCTIONS:
            return self._functional_dropout(call, qualified)
        if qualified is None and isinstance(func, ast.Attribute):
            receiver = self._value(func.value)
            if isinstance(receiver, _Scores) and func.attr == "masked_fill":
                return self._fill(receiver, call)
            if isinstance(receiver, _Probabilities) and func.attr == "matmul" and len(call.args) == 1 and not call.keywords:
                if self._value(call.args[0]) is None:
                    return self._output(receiver, call.args[0])
            if receiver is None and is_self_attribute(func) and len(call.args) == 1 and not call.keywords:
                argument = self._value(call.args[0])
                if isinstance(argument, _Probabilities):
                    return self._module_dropout(argument, func.attr)
                if argument is not None:
                    raise _Unsupported
            if receiver is not None:
                raise _Unsupported
        return None

    # ---- steps -------------------------------------------------------------------------
    def _exact_product(self) -> bool:
        """q @ kᵀ with exactly k's last two axes swapped, and q, k cheap to pass on as they are."""
        product, key = self.product, self.product.key
        node = product.node
        if isinstance(node, ast.BinOp):
            batched = False
        elif isinstance(node, ast.Call):
            qualified = self.document.qualified_name(node.func)
            if qualified == "torch.bmm":
                batched = True
            elif qualified == "torch.matmul" or (qualified is None and isinstance(node.func, ast.Attribute) and node.func.attr == "matmul"):
                batched = False
            else:
                return False  # einsum, baddbmm: other spellings, left alone
            if node.keywords:
                return False
        else:
            return False
        if isinstance(key, ast.Attribute) and key.attr == "mT":
            swapped = True
        elif isinstance(key, ast.Call) and isinstance(key.func, ast.Attribute) and key.func.attr in ("transpose", "swapaxes", "swapdims"):
            axes = tuple(_integer(argument) for argument in key.args)
            if len(key.args) != 2 or key.keywords or None in axes:
                return False
            swapped = (
                axes in _LAST_AXES
                or (batched and set(axes) == {1, 2})
                or (set(axes) == {2, 3} and rank(self.document, product.key_base, node) == 4)
            )
        else:
            return False
        return swapped and _is_plain_operand(product.query) and _is_plain_operand(product.key_base)

    def _scale(self, scores: _Scores, factor: ast.expr, divide: bool) -> _Scores:
        if scores.scale is not None or scores.additive_mask is not None or not self._is_python_number(factor):
            raise _Unsupported  # a scale after an additive mask would scale the mask too
        text = self.document.segment(factor)
        if _is_default_scale(self.document, factor, divide, self.product):
            scores.scale_is_default = True
        if divide:
            text = f"1 / {_parenthesised(factor, text)}"
        scores.scale = text
        return scores

    def _add_mask(self, scores: _Scores, mask: ast.expr) -> _Scores:
        if scores.additive_mask is not None or scores.fill_condition is not None or not _names_a_mask(mask):
            raise _Unsupported  # SDPA takes one mask; a bias that is not a mask stays manual
        scores.additive_mask = self.document.segment(mask)
        return scores

    def _fill(self, scores: _Scores, call: ast.Call) -> _Scores:
        if len(call.args) != 2 or call.keywords:
            raise _Unsupported
        condition, fill = call.args
        if scores.fill_condition is not None or scores.additive_mask is not None or not _is_minus_infinity(self.document, fill):
            raise _Unsupported
        scores.fill_condition = condition
        return scores

    def _softmax(self, call: ast.Call) -> _Probabilities:
        func = call.func
        qualified = self.document.qualified_name(func)
        if isinstance(func, ast.Attribute) and qualified is None and func.attr == "softmax" and not is_self_attribute(func):
            source, arguments = func.value, list(call.args)
        elif qualified in _SOFTMAX_FUNCTIONS and call.args:
            source, arguments = call.args[0], list(call.args[1:])
        elif is_self_attribute(func) and len(call.args) == 1 and not call.keywords:
            source, arguments = call.args[0], []
            if not self._softmax_module_on_last_axis(func.attr):
                raise _Unsupported
            scores = self._value(source)
            if not isinstance(scores, _Scores):
                raise _Unsupported
            self.softmax_seen = True
            return _Probabilities(scores)
        else:
            raise _Unsupported
        dimension = arguments[0] if arguments else None
        for keyword in call.keywords:
            if keyword.arg == "dim" and dimension is None:
                dimension = keyword.value
            else:
                raise _Unsupported  # dtype=torch.float32 and the like change the result's dtype
        if len(arguments) > 1 or dimension is None or _integer(dimension) != -1:
            raise _Unsupported
        scores = self._value(source)
        if not isinstance(scores, _Scores):
            raise _Unsupported
        self.softmax_seen = True
        return _Probabilities(scores)

    def _softmax_module_on_last_axis(self, attribute: str) -> bool:
        module = self.document.modules.class_owning(self.function)
        constructor = module.submodules.get(attribute) if module is not None else None
        if constructor is None or self.document.qualified_name(constructor.func) != "torch.nn.Softmax":
            return False
        dimension = constructor.args[0] if constructor.args else next((k.value for k in constructor.keywords if k.arg == "dim"), None)
        return dimension is not None and _integer(dimension) == -1

    def _module_dropout(self, probabilities: _Probabilities, attribute: str) -> _Probabilities:
        module = self.document.modules.class_owning(self.function)
        constructor = self.document.modules.constructor_name(module, attribute) if module is not None else None
        if constructor != "torch.nn.Dropout" or probabilities.dropped:
            raise _Unsupported
        probabilities.dropped = True
        # nn.Dropout is active exactly when the module is training: so is SDPA's dropout here.
        probabilities.dropout_p = f"self.{attribute}.p if self.training else 0.0"
        return probabilities

    def _functional_dropout(self, call: ast.Call, qualified: str) -> _Probabilities:
        arguments = {"input": None, "p": None, "training": None}
        names = ("input", "p", "training") if qualified.endswith("functional.dropout") else ("input", "p", "train")
        for name, argument in zip(names, call.args):
            arguments["training" if name == "train" else name] = argument
        for keyword in call.keywords:
            name = "training" if keyword.arg == "train" else keyword.arg
            if name not in arguments or arguments[name] is not None:
                raise _Unsupported  # inplace=True and the like
            arguments[name] = keyword.value
        probabilities = self._value(arguments["input"]) if arguments["input"] is not None else None
        if not isinstance(probabilities, _Probabilities) or probabilities.dropped:
            raise _Unsupported
        training = arguments["training"]
        if training is None or arguments["p"] is None and qualified == "torch.dropout":
            raise _Unsupported  # F.dropout trains by default, also in eval(): not what SDPA should copy
        probabilities.dropped = True
        if isinstance(training, ast.Constant):
            if training.value is False:
                return probabilities
            raise _Unsupported
        p = arguments["p"]
        p_text = self.document.segment(p) if p is not None else "0.5"
        probabilities.dropout_p = f"{p_text} if {self.document.segment(training)} else 0.0"
        return probabilities

    def _output(self, probabilities: _Probabilities, value: ast.expr) -> _Output:
        if not _is_plain_operand(value):
            raise _Unsupported
        return _Output(probabilities, value)

    # ---- names -------------------------------------------------------------------------
    def _read_name(self, name: ast.Name, store: bool = False):
        if name.id not in self.environment:
            raise _Unsupported
        if not store:
            self.consumed.add(id(name))
        return self.environment[name.id].copy()  # a failed attempt must leave the binding as it was

    def _check_reads(self, statements: list[ast.stmt]):
        """Each intermediate value is read once, by the next step, and never again afterwards.

        A read of a chain name inside the chain that the chain did not consume (a leaf such as q or
        a mask that reads it, a second use) fails, and so does any later read of it in the function."""
        first, last = statements[0], statements[-1]
        start, end = (first.lineno, first.col_offset), (last.end_lineno, last.end_col_offset)
        rebound = {target.id for target in getattr(last, "targets", ()) if isinstance(target, ast.Name)}
        in_loop = any(isinstance(ancestor, (ast.For, ast.AsyncFor, ast.While)) for ancestor in self._ancestors_in_function(first))
        for name in self.environment:
            for read in loads(self.document, self.function, name):
                position = (read.lineno, read.col_offset)
                if start <= position < end:
                    if id(read) not in self.consumed:
                        raise _Unsupported
                elif name not in rebound and (position >= end or in_loop):
                    raise _Unsupported  # the attention weights are read elsewhere

    def _ancestors_in_function(self, node: ast.AST):
        for ancestor in self.document.index.ancestors(node):
            if ancestor is self.function:
                return
            yield ancestor

    def _is_python_number(self, node: ast.expr, depth: int = 0) -> bool:
        """`1.0 / math.sqrt(d)`, `self.scale`, `k.size(-1) ** -0.5`: SDPA's `scale` takes a float, not a
        tensor (a learned temperature or `logit_scale.exp()` stays manual)."""
        if depth > 8:
            return False
        depth += 1
        if isinstance(node, ast.Constant):
            return type(node.value) in (int, float)
        if isinstance(node, ast.UnaryOp):
            return self._is_python_number(node.operand, depth)
        if isinstance(node, ast.BinOp):
            return self._is_python_number(node.left, depth) and self._is_python_number(node.right, depth)
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ("size", "dim") and self.document.qualified_name(func) is None:
                return True  # a tensor's size is an int
            qualified = self.document.qualified_name(func)
            if qualified in ("math.sqrt", "math.log", "math.pow") or (isinstance(func, ast.Name) and func.id in ("float", "int")):
                return not node.keywords and all(self._is_python_number(argument, depth) for argument in node.args)
            return False
        if isinstance(node, ast.Subscript):
            return isinstance(node.value, ast.Attribute) and node.value.attr == "shape"
        if isinstance(node, ast.Attribute):
            if is_self_attribute(node):
                module = self.document.modules.class_owning(self.function)
                return module is None or node.attr not in module.submodules  # built by a call: a Parameter, a tensor
            return not (isinstance(node.value, ast.Call))
        if isinstance(node, ast.Name):
            return self._names_a_number(node.id, depth)
        return False

    def _names_a_number(self, name: str, depth: int) -> bool:
        """A local bound only to number expressions, or a parameter typed or defaulted as a number."""
        arguments = self.function.args
        positional = [*arguments.posonlyargs, *arguments.args]
        defaults = dict(zip([a.arg for a in positional[len(positional) - len(arguments.defaults) :]], arguments.defaults))
        defaults.update((a.arg, d) for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults) if d is not None)
        for argument in (*positional, *arguments.kwonlyargs):
            if argument.arg == name:
                annotation = ast.unparse(argument.annotation) if argument.annotation is not None else ""
                default = defaults.get(name)
                typed = annotation in ("float", "int")
                defaulted = isinstance(default, ast.Constant) and type(default.value) in (int, float)
                return typed or defaulted
        values = [assignment.value for assignment in assignments(self.document, self.function, name)]
        if values:
            return all(self._is_python_number(value, depth) for value in values)
        return name.isupper()  # a module constant such as HEAD_DIM

    def _mask(self, scores: _Scores) -> tuple[str | None, bool, ast.expr | None]:
        if scores.additive_mask is not None:
            return scores.additive_mask, False, None
        condition = scores.fill_condition
        if condition is None:
            return None, False, None
        causal_size = _CausalMasks(self.document, self.function).size_if_causal(condition)
        if causal_size is not None:
            return None, True, causal_size
        return _negated(self.document, condition), False, None


# ---- causal masks --------------------------------------------------------------------------

class _CausalMasks:
    """Is a masked_fill condition "above the diagonal" of a square mask? Then SDPA's is_causal."""

    def __init__(self, document: Document, function: ast.AST):
        self.document = document
        self.function = function

    def size_if_causal(self, condition: ast.expr) -> ast.expr | None:
        """The mask's size `n` when `condition` masks exactly the keys after each query; else None."""
        # `tril == 0`, `~tril`, `tril.logical_not()`: masked where the lower triangle is not.
        lower = None
        if isinstance(condition, ast.Compare) and len(condition.ops) == 1 and isinstance(condition.ops[0], ast.Eq):
            if _is_zero(condition.comparators[0]):
                lower = condition.left
        elif isinstance(condition, ast.UnaryOp) and isinstance(condition.op, ast.Invert):
            lower = condition.operand
        elif isinstance(condition, ast.Call) and isinstance(condition.func, ast.Attribute) and condition.func.attr == "logical_not" and not condition.args:
            lower = condition.func.value
        if lower is not None:
            return self._triangle(lower, "tril")
        return self._triangle(condition, "triu")

    def _triangle(self, node: ast.expr, kind: str, depth: int = 0):
        if depth > 6:
            return None
        if isinstance(node, ast.Subscript):
            size = self._triangle(node.value, kind, depth + 1)
            if size is None or not _square_leading_slice(self.document, node):
                return None
            return size
        if isinstance(node, ast.Name):
            definition = self._local_definition(node)
            return self._triangle(definition, kind, depth + 1) if definition is not None else None
        if is_self_attribute(node):
            definition = self._buffer_definition(node.attr)
            return self._triangle(definition, kind, depth + 1) if definition is not None else None
        if not isinstance(node, ast.Call):
            return None
        func = node.func
        qualified = self.document.qualified_name(func)
        if qualified == f"torch.{kind}" and node.args:
            if not _diagonal_is(node, kind, position=1):
                return None
            return _square_ones(self.document, node.args[0])
        if isinstance(func, ast.Attribute) and qualified is None:
            if func.attr in (kind, f"{kind}_") and _diagonal_is(node, kind, position=0):
                return _square_ones(self.document, func.value)
            if func.attr in ("bool", "to", "view", "reshape", "unsqueeze", "float", "int", "type", "type_as", "cuda", "detach"):
                return self._triangle(func.value, kind, depth + 1)
        return None

    def _local_definition(self, name: ast.Name) -> ast.expr | None:
        """The one value assigned to `name` in the function (a mask built once, then used)."""
        found = assignments(self.document, self.function, name.id)
        return found[0].value if len(found) == 1 else None

    def _buffer_definition(self, attribute: str) -> ast.expr | None:
        """`self.register_buffer("bias", <value>)` or `self.bias = <value>` in the class."""
        owner = self.document.index.enclosing(self.function, ast.ClassDef)
        if owner is None:
            return None
        found = per_document(self.document, ("buffers", attribute), lambda: _buffers(self.document, attribute))
        values = [value for class_node, value in found if class_node is owner]
        return values[0] if len(values) == 1 else None


def _buffers(document: Document, attribute: str) -> list[tuple[ast.ClassDef, ast.expr]]:
    """(class, value) for each `self.register_buffer("<attribute>", <value>)` and
    `self.<attribute> = <value>` in the file, from the shared index."""
    found = []
    for call in document.index.calls_named("register_buffer"):
        if len(call.args) >= 2 and isinstance(call.args[0], ast.Constant) and call.args[0].value == attribute:
            found.append((call, call.args[1]))
    found.extend((statement, statement.value) for statement in document.index.self_attribute_assignments.get(attribute, ()))
    return [(document.index.enclosing(node, ast.ClassDef), value) for node, value in found]


def _square_ones(document: Document, node: ast.expr):
    """`torch.ones(n, n, ...)`: the size expression `n`."""
    if not (isinstance(node, ast.Call) and document.qualified_name(node.func) == "torch.ones" and len(node.args) == 2):
        return None
    first, second = node.args
    if document.segment(first) != document.segment(second):
        return None
    return first


def _diagonal_is(call: ast.Call, kind: str, position: int) -> bool:
    wanted = 0 if kind == "tril" else 1
    diagonal = call.args[position] if len(call.args) > position else next((k.value for k in call.keywords if k.arg == "diagonal"), None)
    if any(keyword.arg not in ("diagonal",) for keyword in call.keywords):
        return False
    value = 0 if diagonal is None else _integer(diagonal)
    return value == wanted


def _square_leading_slice(document: Document, node: ast.Subscript) -> bool:
    """`[:, :, :T, :T]`, `[..., :T, :T]`, `[:T, :T]`: the top-left T×T corner, every leading axis whole."""
    index = node.slice
    elements = list(index.elts) if isinstance(index, ast.Tuple) else [index]
    if len(elements) < 2:
        return False
    *leading, rows, columns = elements
    for element in (rows, columns):
        if not (isinstance(element, ast.Slice) and element.lower is None and element.step is None and element.upper is not None):
            return False
    if document.segment(rows.upper) != document.segment(columns.upper):
        return False
    for element in leading:
        whole = isinstance(element, ast.Slice) and element.lower is None and element.upper is None and element.step is None
        ellipsis = isinstance(element, ast.Constant) and element.value is Ellipsis
        if not (whole or ellipsis):
            return False
    return True


# ---- small helpers -------------------------------------------------------------------------

def _is_product_shaped(document: Document, node: ast.AST) -> bool:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
        return True
    if isinstance(node, ast.Call):
        if document.qualified_name(node.func) in _MATMUL_FUNCTIONS:
            return True
        return isinstance(node.func, ast.Attribute) and node.func.attr == "matmul"
    return False


def _is_plain_operand(node: ast.expr) -> bool:
    """`q`, `self.k`, `value_states[:, :T]`, `v.transpose(1, 2)`: nothing with side effects or cost."""
    for child in walk(node):
        if isinstance(child, ast.Call):
            if not (isinstance(child.func, ast.Attribute) and child.func.attr in _VIEW_METHODS):
                return False
        elif isinstance(child, (ast.Await, ast.NamedExpr, ast.Yield, ast.YieldFrom, ast.Lambda)):
            return False
    return node.end_lineno == node.lineno


def _integer(node: ast.AST) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return -node.operand.value if type(node.operand.value) is int else None
    return None


def _is_zero(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value in (0, 0.0, False) and type(node.value) in (int, float, bool)


def _is_minus_infinity(document: Document, node: ast.AST) -> bool:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float" and len(node.args) == 1:
        argument = node.args[0]
        return isinstance(argument, ast.Constant) and isinstance(argument.value, str) and argument.value.strip().lower() in ("-inf", "-infinity")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        operand = node.operand
        if isinstance(operand, ast.Call) and isinstance(operand.func, ast.Name) and operand.func.id == "float" and len(operand.args) == 1:
            argument = operand.args[0]
            return isinstance(argument, ast.Constant) and isinstance(argument.value, str) and argument.value.strip().lower() in ("inf", "infinity")
        return document.qualified_name(operand) in _INFINITIES
    return False


def _names_a_mask(node: ast.expr) -> bool:
    """`mask`, `attention_mask[:, :, :, :S]`, `self.causal_mask`: an additive mask by name, not a bias."""
    while isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Name):
        return bool(_MASK_NAME.search(node.id))
    return is_self_attribute(node) and bool(_MASK_NAME.search(node.attr))


def _is_default_scale(document: Document, factor: ast.expr, divide: bool, product: ScoreProduct) -> bool:
    """`* (1.0 / math.sqrt(k.size(-1)))`, `/ math.sqrt(q.size(-1))`, `* k.shape[-1] ** -0.5`: SDPA's own scale."""
    head = None
    if divide:
        head = _sqrt_argument(document, factor)
    elif isinstance(factor, ast.BinOp) and isinstance(factor.op, ast.Div) and _is_one(factor.left):
        head = _sqrt_argument(document, factor.right)
    elif isinstance(factor, ast.BinOp) and isinstance(factor.op, ast.Pow) and _is_minus_half(factor.right):
        head = factor.left
    if head is None:
        return False
    operand = None
    if isinstance(head, ast.Call) and isinstance(head.func, ast.Attribute) and head.func.attr == "size" and len(head.args) == 1:
        if _integer(head.args[0]) == -1:
            operand = head.func.value
    elif isinstance(head, ast.Subscript) and isinstance(head.value, ast.Attribute) and head.value.attr == "shape":
        if _integer(head.slice) == -1:
            operand = head.value.value
    if operand is None:
        return False
    written = document.segment(operand)
    return written in (document.segment(product.query), document.segment(product.key_base))


def _sqrt_argument(document: Document, node: ast.expr) -> ast.expr | None:
    if isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords:
        if document.qualified_name(node.func) in ("math.sqrt", "numpy.sqrt"):
            return node.args[0]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and isinstance(node.right, ast.Constant) and node.right.value == 0.5:
        return node.left
    return None


def _is_one(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value in (1, 1.0) and type(node.value) in (int, float)


def _is_minus_half(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return node.operand.value == 0.5
    return isinstance(node, ast.Constant) and node.value == -0.5


def _parenthesised(node: ast.expr, text: str) -> str:
    return text if isinstance(node, (ast.Name, ast.Attribute, ast.Constant, ast.Call, ast.Subscript)) else f"({text})"


def _negated(document: Document, condition: ast.expr) -> str:
    """The positions SDPA keeps (True = attend) for a condition that marks the masked ones."""
    inverse = {ast.Eq: "!=", ast.NotEq: "==", ast.Lt: ">=", ast.GtE: "<", ast.Gt: "<=", ast.LtE: ">"}
    if isinstance(condition, ast.Compare) and len(condition.ops) == 1 and type(condition.ops[0]) in inverse:
        left, right = document.segment(condition.left), document.segment(condition.comparators[0])
        return f"{left} {inverse[type(condition.ops[0])]} {right}"
    if isinstance(condition, ast.UnaryOp) and isinstance(condition.op, ast.Invert):
        return document.segment(condition.operand)
    text = document.segment(condition)
    return f"~{text}" if isinstance(condition, (ast.Name, ast.Attribute, ast.Subscript, ast.Call)) else f"~({text})"
