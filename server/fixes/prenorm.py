"""The pre-norm rewrite of a block's forward, and the same behind an ablation flag.

Each post-norm sublayer LLM201 reports (`NormalizedResidualSum`) is rewritten to `x = x + f(norm(x))`
when its spelling leaves no doubt about which reads of the stream feed the sublayer:

- one statement, `x = norm(x + f(x, ...))` or `return norm(f(x) + x)`: the stream's reads inside
  the branch read `norm(x)` instead (bound once to `x_norm` when the branch reads it several
  times, as `self_attn(x, x, x)` does);
- the sublayer called on the line before, its result read only by the sum
  (`a, _ = self.attn(x, x, x)` then `x = norm(x + drop(a))`): that call reads the normalized stream;
- the sum bound to a temporary read only by the norm (`y = x + f(x)` then `x = norm(y)`): folded
  into `x = x + f(norm(x))`;
- the Hugging Face spelling with a saved residual: `residual = h` ... `h = residual + h` then
  `h = norm(h)` (or `h = norm(residual + h)`): the norm moves up to right after `residual = h`.

Anything else (the sublayer's input computed further away, an augmented `x += f(x)`) gets no
rewrite, and then the whole forward gets none: a block that is half pre-norm is neither design.

The ablation variant sets `self.pre_norm = True` in `__init__` and runs
`if self.pre_norm: <rewritten statements> else: <the original statements, verbatim>` in forward.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from llmarch_lsp.document import Document
from llmarch_lsp.facts.index import walk
from llmarch_lsp.facts.modules import ModuleClass
from llmarch_lsp.facts.residuals import NormalizedResidualSum, added_terms
from llmarch_lsp.findings import Span
from llmarch_lsp.fixes.builders import cited_comment, cited_text
from llmarch_lsp.fixes.model import UNSAFE, Fix, Replace
from llmarch_lsp.fixes.scopes import assignments, loads, per_document
from llmarch_lsp.fixes.shapes import block_of, ends_its_line, owns_its_lines, starts_its_line
from llmarch_lsp.text import split_lines

PRE_NORM_TITLE = "Move the norm before the sublayer (pre-norm)"
ABLATION_TITLE = "Pre-norm behind an ablation flag (self.pre_norm)"
FLAG = "pre_norm"
_FINAL_NORM = "a pre-norm stack needs a final norm before the output head"
PRE_NORM_REASON = f"Pre-norm: normalize the sublayer's input and keep the residual path an identity; {_FINAL_NORM}"
_ABLATION_REASON = (
    f"Ablation: pre_norm=True normalizes each sublayer's input (pre-norm), False runs the original post-norm "
    f"path; {_FINAL_NORM}"
)
_FLAG_REASON = "Ablation switch: True for pre-norm residual blocks, False for the original post-norm ones"


@dataclass(frozen=True)
class _Rewrite:
    """One sublayer's rewrite: its edits, and the statements (of one block) it touches."""

    replacements: tuple[Replace, ...]
    comment_line: int | None  # a statement to put the cited comment above; None when inlined
    statements: tuple[ast.stmt, ...]
    # The same edits without an inlined comment, for the ablation variant (one comment above the `if`).
    uncommented: tuple[Replace, ...] | None = None

    @property
    def plain(self) -> tuple[Replace, ...]:
        return self.replacements if self.uncommented is None else self.uncommented


def pre_norm_fixes(
    document: Document, module: ModuleClass, sums: list[NormalizedResidualSum], *, ablation: bool = True
) -> tuple[Fix | None, Fix | None]:
    """(the pre-norm rewrite of every sum in the forward, the same behind an ablation flag when asked)."""
    rewrites = []
    for found in sums:
        rewrite = _rewrite(document, found)
        if rewrite is None:
            return None, None
        rewrites.append(rewrite)
    if not rewrites:
        return None, None
    comments = tuple(
        cited_comment(rewrite.comment_line, PRE_NORM_REASON, "xiong2020layer") for rewrite in rewrites if rewrite.comment_line
    )
    # Not parsed here: the rules run on every keystroke, and applying a fix refuses a result that
    # does not parse anyway.
    primary = Fix(
        title=PRE_NORM_TITLE,
        applicability=UNSAFE,
        replacements=tuple(edit for rewrite in rewrites for edit in rewrite.replacements),
        comments=comments,
    )
    return primary, _ablation(document, module, rewrites) if ablation else None


# ---- one sublayer ----------------------------------------------------------------------------

def _rewrite(document: Document, found: NormalizedResidualSum) -> _Rewrite | None:
    statement = document.index.parent(found.norm_call)
    if not isinstance(statement, (ast.Assign, ast.Return)) or statement.value is not found.norm_call:
        return None
    if not owns_its_lines(document, statement):
        return None
    if isinstance(statement, ast.Assign) and not (len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name)):
        return None
    if _saved_residual(document, found, statement) is not None:
        return _move_norm_up(document, found, statement)
    if not isinstance(found.add, ast.BinOp) or len(added_terms(found.add)) != 2:
        return None
    if found.via_temporary:
        return _fold_temporary(document, found, statement)
    if found.norm_call.args[:1] != [found.add]:
        return None
    if isinstance(statement, ast.Assign) and statement.targets[0].id != found.stream.id:
        return None
    if _stream_reads(found.branch, found.stream.id):
        return _normalize_branch_input(document, found, statement)
    return _normalize_previous_statement(document, found, statement)


def _normalize_branch_input(document: Document, found: NormalizedResidualSum, statement) -> _Rewrite | None:
    """`x = norm(x + f(x))` -> `x = x + f(norm(x))`."""
    reads = _stream_reads(found.branch, found.stream.id)
    normalized = _with_input(document, found.norm_call, found.add, found.stream.id)
    binding = _binding(document, statement, found, normalized, len(reads))
    if binding is None:
        return None
    edits, read_as = binding
    edits.append(Replace(document.span_of(found.norm_call), _substituted(document, found.add, reads, read_as)))
    return _Rewrite(tuple(edits), statement.lineno, (statement,))


def _fold_temporary(document: Document, found: NormalizedResidualSum, statement) -> _Rewrite | None:
    """`y = x + f(x)` then `x = norm(y)` -> `x = x + f(norm(x))` (y was read only by the norm)."""
    block = block_of(document, statement)
    position = _position(block, statement) if block is not None else 0
    previous = block[position - 1] if position > 0 else None
    argument = found.norm_call.args[0] if len(found.norm_call.args) == 1 else None
    if not (
        isinstance(previous, ast.Assign)
        and previous.value is found.add
        and len(previous.targets) == 1
        and isinstance(previous.targets[0], ast.Name)
        and isinstance(argument, ast.Name)
        and argument.id == previous.targets[0].id
        and starts_its_line(document, previous)
    ):
        return None
    reads = _stream_reads(found.branch, found.stream.id)
    if not reads:
        return None
    normalized = _with_input(document, found.norm_call, argument, found.stream.id)
    binding = _binding(document, previous, found, normalized, len(reads))
    if binding is None:
        return None
    edits, read_as = binding
    new_sum = _substituted(document, found.add, reads, read_as)
    head = document.text_in(Span(statement.lineno, document.span_of(statement).column, *_start(document, found.norm_call)))
    start, end = document.span_of(previous), document.span_of(statement)
    edits.append(Replace(Span(start.line, start.column, end.end_line, end.end_column), f"{head}{new_sum}"))
    return _Rewrite(tuple(edits), previous.lineno, (previous, statement))


def _normalize_previous_statement(document: Document, found: NormalizedResidualSum, statement) -> _Rewrite | None:
    """`a, _ = self.attn(x, x, x)` then `x = norm(x + drop(a))` -> the attention reads `norm(x)`, the sum stays."""
    block = block_of(document, statement)
    position = _position(block, statement) if block is not None else 0
    previous = block[position - 1] if position > 0 else None
    if not (isinstance(previous, ast.Assign) and starts_its_line(document, previous) and ends_its_line(document, previous)):
        return None
    produced = _stored_names(previous) - {"_"}
    stream = found.stream.id
    used = {node.id for node in walk(found.branch) if isinstance(node, ast.Name)}
    if stream in produced or not produced & used:
        return None
    function = document.index.enclosing(statement, ast.FunctionDef, ast.AsyncFunctionDef)
    if function is None:
        return None
    for name in produced:
        for read in loads(document, function, name):
            if not _within(read, statement):
                return None  # the sublayer's output is used elsewhere too
        if len(assignments(document, function, name)) != 1:
            return None
    reads = _stream_reads(previous.value, stream)
    if not reads:
        return None
    normalized = _with_input(document, found.norm_call, found.add, stream)
    binding = _binding(document, previous, found, normalized, len(reads))
    if binding is None:
        return None
    edits, read_as = binding
    edits.extend(Replace(document.span_of(read), read_as) for read in reads)
    edits.append(Replace(document.span_of(found.norm_call), document.segment(found.add)))
    return _Rewrite(tuple(edits), previous.lineno, (previous, statement))


def _binding(document: Document, statement: ast.stmt, found: NormalizedResidualSum, normalized: str, reads: int):
    """How the sublayer reads the normalized stream: inline for one read; bound once to `x_norm`
    (inserted before `statement`) for several, as in `self_attn(x, x, x)`. None if the name is taken."""
    if reads == 1:
        return [], normalized
    bound = f"{found.stream.id}_norm"
    function = document.index.enclosing(statement, ast.FunctionDef, ast.AsyncFunctionDef)
    if function is None or loads(document, function, bound) or assignments(document, function, bound):
        return None  # the name is taken
    start = document.span_of(statement)
    indentation = document.indentation_of(statement.lineno)
    insert = Replace(Span(start.line, start.column, start.line, start.column), f"{bound} = {normalized}\n{indentation}")
    return [insert], bound


def _stream_reads(expression: ast.AST, stream: str) -> list[ast.Name]:
    return [node for node in walk(expression) if isinstance(node, ast.Name) and node.id == stream and isinstance(node.ctx, ast.Load)]


def _start(document: Document, node: ast.AST) -> tuple[int, int]:
    span = document.span_of(node)
    return span.line, span.column


def _move_norm_up(document: Document, found: NormalizedResidualSum, statement) -> _Rewrite | None:
    """`residual = h; <sublayer on h>; h = residual + h; h = norm(h)` -> the norm right after `residual = h`."""
    saved = _saved_residual(document, found, statement)
    if saved is None:
        return None
    alias, stream_name = saved
    indentation = document.indentation_of(statement.lineno)
    norm_text = f"{stream_name} = {_with_input(document, found.norm_call, found.norm_call.args[0], stream_name)}"
    # The moved line is new text, so its cited comment is part of the inserted text.
    comment = f"{indentation}# {cited_text(PRE_NORM_REASON, 'xiong2020layer')}\n"
    at = Span(alias.end_lineno + 1, 0, alias.end_lineno + 1, 0)
    span = document.span_of(statement)
    if found.via_temporary:  # `h = norm(h)` goes away entirely
        removal = Replace(Span(span.line, 0, span.end_line + 1, 0), "")
    else:  # `h = norm(residual + h)` keeps its sum
        removal = Replace(document.span_of(found.norm_call), document.segment(found.add))
    block = block_of(document, statement)
    touched = block[_position(block, alias) : _position(block, statement) + 1]
    return _Rewrite(
        (Replace(at, f"{comment}{indentation}{norm_text}\n"), removal),
        None,
        tuple(touched),
        uncommented=(Replace(at, f"{indentation}{norm_text}\n"), removal),
    )


def _saved_residual(document: Document, found: NormalizedResidualSum, statement) -> tuple[ast.Assign, str] | None:
    """(`residual = h`, "h") when the sum adds a saved copy of the stream to the stream's own name,
    and that sum (directly, or bound on the line before) is what `h = norm(...)` normalizes."""
    if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name)):
        return None
    name = statement.targets[0].id
    add = found.add
    if not isinstance(add, ast.BinOp) or len(added_terms(add)) != 2:
        return None
    other = next((term for term in added_terms(add) if term is not found.stream), None)
    if not (isinstance(other, ast.Name) and other.id == name and found.stream.id != name):
        return None
    block = block_of(document, statement)
    if block is None:
        return None
    position = _position(block, statement)
    if found.via_temporary:
        argument = found.norm_call.args[0] if found.norm_call.args else None
        sum_statement = block[position - 1] if position > 0 else None
        if not (
            isinstance(argument, ast.Name)
            and argument.id == name
            and isinstance(sum_statement, ast.Assign)
            and sum_statement.value is add
            and len(sum_statement.targets) == 1
            and isinstance(sum_statement.targets[0], ast.Name)
            and sum_statement.targets[0].id == name
        ):
            return None
        position -= 1
    elif found.norm_call.args[:1] != [add]:
        return None
    residual = found.stream.id
    for earlier in reversed(block[:position]):
        if residual in _stored_names(earlier):
            if (
                isinstance(earlier, ast.Assign)
                and len(earlier.targets) == 1
                and isinstance(earlier.value, ast.Name)
                and earlier.value.id == name
                and starts_its_line(document, earlier)
                and ends_its_line(document, earlier)
            ):
                return earlier, name
            return None
    return None


# ---- the ablation flag -------------------------------------------------------------------------

def _ablation(document: Document, module: ModuleClass, rewrites: list[_Rewrite]) -> Fix | None:
    statements = [statement for rewrite in rewrites for statement in rewrite.statements]
    block = block_of(document, statements[0])
    if block is None or any(block_of(document, statement) is not block for statement in statements):
        return None
    positions = sorted(_position(block, statement) for statement in statements)
    region = block[positions[0] : positions[-1] + 1]
    first_line, last_line = region[0].lineno, region[-1].end_lineno or region[-1].lineno
    if not (starts_its_line(document, region[0]) and ends_its_line(document, region[-1])) or last_line >= len(document.lines):
        return None
    if _has_multiline_string(document, region) or _uses_flag(document, module):
        return None
    initializer = _flag_insertion(document, module)
    if initializer is None:
        return None

    original = document.lines[first_line - 1 : last_line]
    rewritten = _edited_lines(original, first_line, [edit for rewrite in rewrites for edit in rewrite.plain])
    if rewritten is None:
        return None
    indentation = document.indentation_of(first_line)
    unit = _indent_unit(document, module)
    body = [f"{indentation}if self.{FLAG}:", *_indented(rewritten, unit), f"{indentation}else:", *_indented(original, unit)]
    forward = Replace(Span(first_line, 0, last_line + 1, 0), "\n".join(body) + "\n")
    flag_line, flag_indentation = initializer
    # The flag's comment goes with the line this fix inserts, so it is part of the inserted text.
    flag_comment = f"{flag_indentation}# {cited_text(_FLAG_REASON, 'xiong2020layer')}\n"
    flag = Replace(Span(flag_line, 0, flag_line, 0), f"{flag_comment}{flag_indentation}self.{FLAG} = True\n")
    fix = Fix(
        title=ABLATION_TITLE,
        applicability=UNSAFE,
        replacements=(flag, forward),
        comments=(cited_comment(first_line, _ABLATION_REASON, "xiong2020layer"),),
    )
    return fix


def _edited_lines(lines: list[str], first_line: int, edits: list[Replace]) -> list[str] | None:
    """`lines` (the file's lines from `first_line` on) with `edits` applied; None if one reaches outside."""
    text = "\n".join(lines)
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)

    def offset(line: int, column: int) -> int | None:
        relative = line - first_line
        if relative == len(lines) and column == 0:
            return len(text) + 1  # the start of the line after the region
        if not 0 <= relative < len(lines):
            return None
        return starts[relative] + column

    located = []
    for edit in edits:
        start, end = offset(edit.span.line, edit.span.column), offset(edit.span.end_line, edit.span.end_column)
        if start is None or end is None or end > len(text) + 1:
            return None
        located.append((start, end, edit.new_text))
    text += "\n"
    for start, end, new_text in sorted(located, reverse=True):
        text = text[:start] + new_text + text[end:]
    return split_lines(text.removesuffix("\n"))


def _flag_insertion(document: Document, module: ModuleClass) -> tuple[int, str] | None:
    """Where `self.pre_norm = True` goes: after `super().__init__(...)`, else first in `__init__`."""
    initializer = next(
        (
            statement
            for statement in module.node.body
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)) and statement.name == "__init__"
        ),
        None,
    )
    if initializer is None:
        return None
    body = initializer.body
    anchor = None
    for statement in body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
            func = statement.value.func
            if isinstance(func, ast.Attribute) and func.attr == "__init__":
                anchor = statement
                break
    if anchor is not None:
        if not ends_its_line(document, anchor):
            return None
        return (anchor.end_lineno or anchor.lineno) + 1, document.indentation_of(anchor.lineno)
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str) and len(body) > 1:
        first = body[1]
    if not starts_its_line(document, first):
        return None
    return first.lineno, document.indentation_of(first.lineno)


def _uses_flag(document: Document, module: ModuleClass) -> bool:
    """Whether the class already has a `self.pre_norm` (a norm module in sandwich blocks, say)."""
    first, last = module.node.lineno, module.node.end_lineno or module.node.lineno
    flags = per_document(
        document,
        "pre-norm-flags",
        lambda: [node.lineno for node in document.index.attributes_by_name.get(FLAG, ())],
    )
    return any(first <= line <= last for line in flags)


def _indent_unit(document: Document, module: ModuleClass) -> str:
    forward = module.forward
    if forward is not None and forward.body:
        inner = document.indentation_of(forward.body[0].lineno)
        outer = document.indentation_of(forward.lineno)
        if inner.startswith(outer) and len(inner) > len(outer):
            return inner[len(outer) :]
    return "    "


def _indented(lines: list[str], unit: str) -> list[str]:
    return [f"{unit}{line}" if line.strip() else line for line in lines]


def _has_multiline_string(document: Document, statements: list[ast.stmt]) -> bool:
    """Indenting a statement must not change a string's content."""
    starts = per_document(document, "multiline-string-lines", lambda: _multiline_string_lines(document))
    return any(statement.lineno <= line <= (statement.end_lineno or statement.lineno) for statement in statements for line in starts)


def _multiline_string_lines(document: Document) -> list[int]:
    """First lines of the file's string literals that span several lines (usually a handful)."""
    lines = [
        node.lineno
        for node in document.index.nodes(ast.Constant)
        if node.end_lineno != node.lineno and isinstance(node.value, (str, bytes))
    ]
    lines += [node.lineno for node in document.index.nodes(ast.JoinedStr) if node.end_lineno != node.lineno]
    return lines


# ---- helpers -----------------------------------------------------------------------------------

def _with_input(document: Document, norm_call: ast.Call, normalized: ast.expr, stream: str) -> str:
    """`self.ln_1(x)` from `self.ln_1(x + self.attn(x))`; `F.layer_norm(h, h.shape[-1:])` keeps other arguments."""
    call, inner = document.span_of(norm_call), document.span_of(normalized)
    before = document.text_in(Span(call.line, call.column, inner.line, inner.column))
    after = document.text_in(Span(inner.end_line, inner.end_column, call.end_line, call.end_column))
    if before.endswith("(") and after.startswith(")") and _wrapped_in_parentheses(document, normalized, norm_call):
        before, after = before[:-1], after[1:]
    return f"{before}{stream}{after}"


def _wrapped_in_parentheses(document: Document, normalized: ast.expr, norm_call: ast.Call) -> bool:
    """`norm((x + f(x)))`: extra parentheses around the argument, not the call's own."""
    call_text = document.segment(norm_call)
    func_text = document.segment(norm_call.func)
    return call_text[len(func_text) :].lstrip().startswith("((")


def _substituted(document: Document, expression: ast.expr, reads: list[ast.Name], text: str) -> str:
    """`expression`'s source with each of `reads` replaced by `text`."""
    span = document.span_of(expression)
    source = document.segment(expression)
    lines = source.split("\n")
    offsets = [0]
    for line in lines[:-1]:
        offsets.append(offsets[-1] + len(line) + 1)

    def offset(line: int, column: int) -> int:
        relative = line - span.line
        return offsets[relative] + (column - span.column if relative == 0 else column)

    for read in sorted(reads, key=lambda node: (node.lineno, node.col_offset), reverse=True):
        read_span = document.span_of(read)
        start, end = offset(read_span.line, read_span.column), offset(read_span.end_line, read_span.end_column)
        source = source[:start] + text + source[end:]
    return source


def _within(node: ast.AST, statement: ast.stmt) -> bool:
    return (statement.lineno, statement.col_offset) <= (node.lineno, node.col_offset) and (node.end_lineno, node.end_col_offset) <= (
        statement.end_lineno,
        statement.end_col_offset,
    )


def _stored_names(statement: ast.stmt) -> set[str]:
    return {node.id for node in walk(statement) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}


def _position(block: list[ast.stmt], statement: ast.stmt) -> int:
    return next(position for position, item in enumerate(block) if item is statement)
