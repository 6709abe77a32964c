import type { InferenceSession, Tensor } from 'onnxruntime-node';

type Ort = typeof import('onnxruntime-node');

async function loadOrt(): Promise<Ort> {
  const m = (await import('onnxruntime-node')) as Ort & { default?: Ort };
  // A CommonJS module: under Node's ESM loader its exports may arrive as `default`.
  return m.default ?? m;
}

/** A fitted classifier (model.onnx) in onnxruntime, run as a user would run it. */
export interface OnnxClassifier {
  readonly inputName: string;
  readonly outputNames: readonly string[];
  /** Logits and probabilities (softmax of the logits when the model has no such output), row-major n × k. */
  run(
    x: Float32Array,
    n: number,
    exampleShape: readonly number[],
  ): Promise<{ logits: Float32Array; probabilities: Float32Array; k: number }>;
  release(): Promise<void>;
}

export async function openOnnxClassifier(
  bytes: Uint8Array,
  source: string,
  inputName?: string,
): Promise<OnnxClassifier> {
  const ort = await loadOrt();
  let session: InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
    });
  } catch (err) {
    throw new Error(`${source}: onnxruntime cannot load the model: ${(err as Error).message}`);
  }
  const input = inputName ?? session.inputNames[0];
  if (!input || !session.inputNames.includes(input))
    throw new Error(
      `${source}: the model has no input "${input}" (inputs: ${session.inputNames.join(', ')})`,
    );
  const logitsName = session.outputNames.includes('logits') ? 'logits' : session.outputNames[0];
  const probName = session.outputNames.includes('probabilities') ? 'probabilities' : undefined;
  return {
    inputName: input,
    outputNames: session.outputNames,
    async run(x, n, exampleShape) {
      const feed = new ort.Tensor('float32', x, [n, ...exampleShape]);
      const fetches = [logitsName as string, ...(probName ? [probName] : [])];
      const out = await session.run({ [input]: feed }, fetches);
      const logitsT = out[logitsName as string] as Tensor;
      const logits = new Float32Array(logitsT.data as Float32Array);
      const k = logits.length / n;
      let probabilities: Float32Array;
      if (probName)
        probabilities = new Float32Array((out[probName] as Tensor).data as Float32Array);
      else {
        probabilities = new Float32Array(logits.length);
        for (let i = 0; i < n; i++) {
          const row = logits.subarray(i * k, (i + 1) * k);
          const max = Math.max(...row);
          let sum = 0;
          for (let j = 0; j < k; j++) sum += Math.exp((row[j] as number) - max);
          for (let j = 0; j < k; j++)
            probabilities[i * k + j] = Math.exp((row[j] as number) - max) / sum;
        }
      }
      feed.dispose();
      for (const t of Object.values(out)) t.dispose();
      return { logits, probabilities, k };
    },
    release: () => session.release(),
  };
}
