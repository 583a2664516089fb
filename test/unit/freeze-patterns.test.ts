/** Glob and regex patterns over dotted diffusers parameter names. */
import { compilePattern } from '../../lib/config/patterns';
import { ConfigError } from '../../lib/errors';

const matches = (pattern: string, name: string): boolean => compilePattern(pattern, 'test').test(name);

describe('globs', () => {
  test('a literal glob matches exactly that name; dots are literal, not "any character"', () => {
    expect(matches('conv_in.weight', 'conv_in.weight')).toBe(true);
    expect(matches('conv_in.weight', 'conv_in.weights')).toBe(false);
    expect(matches('conv_in.weight', 'xconv_in.weight')).toBe(false);
    expect(matches('conv_in.weight', 'conv_inXweight')).toBe(false);
  });

  test('* stays within one segment', () => {
    expect(matches('conv_in.*', 'conv_in.weight')).toBe(true);
    expect(matches('conv_in.*', 'conv_in.bias')).toBe(true);
    expect(matches('up_blocks.*', 'up_blocks.0.resnets.0.conv1.weight')).toBe(false);
    expect(matches('down_blocks.*.resnets.0.conv1.weight', 'down_blocks.1.resnets.0.conv1.weight')).toBe(true);
    expect(matches('down_blocks.*.resnets.0.conv1.weight', 'down_blocks.1.x.resnets.0.conv1.weight')).toBe(false);
  });

  test('* inside a segment matches any characters but a dot, including none', () => {
    expect(matches('**.norm*.weight', 'mid_block.resnets.0.norm1.weight')).toBe(true);
    expect(matches('**.norm*.weight', 'mid_block.attentions.0.norm.weight')).toBe(true);
    expect(matches('**.to_*.weight', 'x.to_q.weight')).toBe(true);
    expect(matches('**.to_*.weight', 'x.to_out.0.weight')).toBe(false);
    expect(matches('*_blocks.0.**', 'down_blocks.0.resnets.0.conv1.bias')).toBe(true);
  });

  test('** spans zero or more whole segments at the start, middle and end', () => {
    expect(matches('up_blocks.**', 'up_blocks.0.resnets.0.conv1.weight')).toBe(true);
    expect(matches('up_blocks.**', 'up_blocks')).toBe(true);
    expect(matches('up_blocks.**', 'up_blocksX.0')).toBe(false);
    expect(matches('up_blocks.**', 'down_blocks.0.up_blocks.1')).toBe(false);
    expect(matches('**.bias', 'conv_in.bias')).toBe(true);
    expect(matches('**.bias', 'bias')).toBe(true);
    expect(matches('**.bias', 'a.b.c.bias')).toBe(true);
    expect(matches('**.bias', 'a.b.c.xbias')).toBe(false);
    expect(matches('**.bias', 'a.bias.weight')).toBe(false);
    expect(matches('down_blocks.**.conv1.weight', 'down_blocks.conv1.weight')).toBe(true);
    expect(matches('down_blocks.**.conv1.weight', 'down_blocks.0.resnets.0.conv1.weight')).toBe(true);
    expect(matches('down_blocks.**.conv1.weight', 'up_blocks.0.resnets.0.conv1.weight')).toBe(false);
    expect(matches('**', 'anything.at.all')).toBe(true);
    expect(matches('**.**.bias', 'a.bias')).toBe(true);
    expect(matches('a.**.**.b', 'a.b')).toBe(true);
    expect(matches('a.**.**.b', 'a.x.y.b')).toBe(true);
  });

  test('refuses empty segments, ** inside a segment and other glob dialects', () => {
    for (const bad of ['a..b', '.a', 'a.', 'a**.b', 'a.b**', 'a?b', 'a[0-3]', 'a{b,c}', 'a b', '']) {
      expect(() => compilePattern(bad, 'freeze.trainable[3]')).toThrow(ConfigError);
    }
    expect(() => compilePattern('down_blocks.[01].**', 'freeze.trainable[3]')).toThrow(
      /^freeze\.trainable\[3\]: glob "down_blocks\.\[01\]\.\*\*" contains "\[".*re:/,
    );
    expect(() => compilePattern('a**.b', 'freeze.frozen[0]')).toThrow(/freeze\.frozen\[0\].*"\*\*" must be a whole segment/);
  });
});

describe('regular expressions', () => {
  test('re: matches the whole name (anchored)', () => {
    expect(matches('re:up_blocks\\.[01]\\..*', 'up_blocks.1.resnets.0.conv1.weight')).toBe(true);
    expect(matches('re:up_blocks\\.[01]\\..*', 'up_blocks.2.resnets.0.conv1.weight')).toBe(false);
    expect(matches('re:conv_in', 'conv_in.weight')).toBe(false);
    expect(matches('re:conv_in\\.weight', 'xconv_in.weight')).toBe(false);
    // an alternation is anchored as a whole, not only its first branch
    expect(matches('re:conv_in\\.weight|conv_out\\.bias', 'conv_out.bias')).toBe(true);
    expect(matches('re:conv_in\\.weight|conv_out\\.bias', 'conv_out.bias.x')).toBe(false);
    expect(matches('re:.*attn[12]\\.to_[qkv]\\.weight', 'mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight')).toBe(true);
  });

  test('an invalid regular expression names the pattern and the field', () => {
    let error: unknown;
    try {
      compilePattern('re:up_blocks.(', 'freeze.trainable[2]');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(/^freeze\.trainable\[2\]: "re:up_blocks\.\(" is not a valid regular expression \(/);
    expect(() => compilePattern('re:', 'freeze.frozen[0]')).toThrow(/freeze\.frozen\[0\]: expected a regular expression after "re:"/);
  });
});
