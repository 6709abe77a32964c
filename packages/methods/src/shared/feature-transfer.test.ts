import { describe, expect, it } from 'vitest';
import { attentionTransfer } from '../attention-transfer/index.js';
import { featureMatching } from '../feature-matching/index.js';
import { l2tWw } from '../l2t-ww/index.js';

describe('validateFeatureTransferOptions', () => {
  it('refuses a pairs spec of the wrong syntax up front, in every feature-transfer method', () => {
    for (const method of [l2tWw, featureMatching, attentionTransfer]) {
      expect(() => method.validate({ pairs: 'nope' })).toThrow(
        new RegExp(`method "${method.id}": pairs must be 'all', 'one-to-one', 'single' or a list`),
      );
      expect(() => method.validate({ pairs: 'a:b,c' })).toThrow(/pairs must be/);
      // tap names are checked later, against the built backbones
      expect(() => method.validate({ pairs: 'conv1:conv2' })).not.toThrow();
      expect(() => method.validate({ pairs: 'one-to-one' })).not.toThrow();
    }
  });
});
