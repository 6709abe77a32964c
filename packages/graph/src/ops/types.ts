import type { GraphNode, OnnxGraphBuilder, ShapeInference } from '../builder.js';

/** What a gradient rule sees: the forward node, its outputs' gradients, and the graph to emit into. */
export interface GradContext {
  readonly g: OnnxGraphBuilder;
  readonly node: GraphNode;
  /** Gradient of each output (undefined where none flows back). */
  readonly dOut: readonly (string | undefined)[];
  /** Whether input `i` needs a gradient (it depends on a differentiated value). */
  needs(i: number): boolean;
  /**
   * For a gradient that is a broadcast (an Expand of a smaller value): that
   * smaller value. A rule may use it where broadcasting against a
   * full-shaped operand gives the same result without reading the expanded copy.
   */
  compact?(value: string): string | undefined;
}

/**
 * One op of the table: shape inference, and how the gradient flows back.
 * A rule emits ordinary ops that have rules themselves, so the gradient
 * graph can be differentiated again (second-order meta-gradients).
 */
export interface OpRule {
  readonly infer: ShapeInference;
  /** The inputs' gradients (undefined for inputs that get none). Absent: the op has no gradient rule. */
  readonly grad?: (ctx: GradContext) => (string | undefined)[];
  /** Outputs carry no gradient (indices, shapes, masks): nothing flows back through the op. */
  readonly nonDifferentiable?: boolean;
}
