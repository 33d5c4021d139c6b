import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { codesAt, DiagnosticLike, explainCommand, explanationMarkdown, isRuleReference, listRulesCommand, ruleCode } from '../explain';

function diagnostic(code: DiagnosticLike['code'], line: number, start: number, end: number, source = 'llmarch'): DiagnosticLike {
  return { source, code, range: { start: { line, character: start }, end: { line, character: end } } };
}

describe('the rule under the cursor', () => {
  const diagnostics = [
    diagnostic('LLM101', 5, 10, 33),
    diagnostic({ value: 'LLM301' }, 9, 4, 20),
    diagnostic('LLM203', 9, 30, 40),
    diagnostic('E501', 5, 0, 80, 'flake8'),
  ];

  it('reads codes given as strings or as {value, target}, only from llmarch', () => {
    assert.equal(ruleCode(diagnostics[0]), 'LLM101');
    assert.equal(ruleCode(diagnostics[1]), 'LLM301');
    assert.equal(ruleCode(diagnostics[3]), undefined);
  });

  it("picks the finding whose range holds the cursor, ends included", () => {
    assert.deepEqual(codesAt(diagnostics, { line: 5, character: 10 }), ['LLM101']);
    assert.deepEqual(codesAt(diagnostics, { line: 5, character: 33 }), ['LLM101']);
    assert.deepEqual(codesAt(diagnostics, { line: 9, character: 35 }), ['LLM203']);
  });

  it('falls back to the findings on the line, and to none elsewhere', () => {
    assert.deepEqual(codesAt(diagnostics, { line: 9, character: 0 }), ['LLM301', 'LLM203']);
    assert.deepEqual(codesAt(diagnostics, { line: 5, character: 2 }), ['LLM101']);
    assert.deepEqual(codesAt(diagnostics, { line: 7, character: 0 }), []);
  });

  it('accepts rule codes and names only', () => {
    assert.ok(isRuleReference('LLM101'));
    assert.ok(isRuleReference('unscaled-attention'));
    assert.ok(!isRuleReference('--check'));
    assert.ok(!isRuleReference('LLM101; rm -rf /'));
  });
});

describe('asking the server', () => {
  const server = { command: '/usr/bin/python3', args: ['-m', 'llmarch_lsp', '--stdio'], cwd: '/w', source: 'llmarch.interpreter' };

  it('runs the resolved server with --explain CODE', () => {
    assert.deepEqual(explainCommand(server, 'LLM101'), { command: '/usr/bin/python3', args: ['-m', 'llmarch_lsp', '--explain', 'LLM101'] });
    assert.deepEqual(listRulesCommand(server).args, ['-m', 'llmarch_lsp', '--list-rules', '--format', 'json']);
  });
});

describe('the explanation as Markdown', () => {
  const text = [
    'LLM101 unscaled-attention',
    '=========================',
    '',
    'Attention scores reach a softmax unscaled.',
    '',
    'Literature',
    '----------',
    '- Vaswani et al. (2017) introduce the factor:',
    '  for large d_k, unscaled dot products saturate the softmax.',
    '',
    'References:',
    '  [1] Vaswani et al. Attention Is All You Need. 2017. arXiv:1706.03762',
    '  [2] Dehghani et al. Scaling Vision Transformers. 2023. arXiv:2302.05442',
    '',
    'Implementation',
    '--------------',
    'Before:',
    '',
    '    att = q @ k.transpose(-2, -1)  # (B, nh, T, T)',
    '',
    'Options ([tool.llmarch.unscaled-attention])',
    '--------------------',
    '  min-head-dim = 16: smallest head dimension checked',
    '',
  ].join('\n');
  const markdown = explanationMarkdown(text);

  it('keeps the setext headings, bullets with their continuation lines, and indented code', () => {
    assert.match(markdown, /^LLM101 unscaled-attention\n=+\n/);
    assert.match(markdown, /\nLiterature\n-+\n- Vaswani et al\. \(2017\) introduce the factor:\n {2}for large d_k/);
    assert.match(markdown, /\n {4}att = q @ k\.transpose\(-2, -1\) {2}# \(B, nh, T, T\)\n/);
  });

  it('turns the numbered references and the options into lists', () => {
    assert.match(markdown, /\*\*References\*\*\n\n1\. Vaswani et al\. Attention Is All You Need\. 2017\. arXiv:1706\.03762\n2\. Dehghani/);
    assert.match(markdown, /\n- min-head-dim = 16: smallest head dimension checked\n/);
  });
});
