/**
 * A one-line progress bar on stderr that redraws in place, and only when
 * stderr is a terminal: piped or CI output gets one plain line per trial.
 */
export interface Progress {
  trial(label: string, index: number, total: number): void;
  epoch(phase: string, epoch: number, epochs: number): void;
  done(line: string): void;
  close(): void;
}

export function createProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  const tty = Boolean(stream.isTTY) && process.env.CI !== 'true';
  // A terminal may report 0 columns (or none): redraw within a sane width, never a negative count.
  const width = () => Math.max(2, stream.columns || 100) - 1;
  let label = '';
  let trialText = '';
  const draw = (fraction: number, detail: string) => {
    if (!tty) return;
    const barWidth = 24;
    const filled = Math.min(barWidth, Math.max(0, Math.round(fraction * barWidth)));
    const bar = `${'█'.repeat(filled)}${'░'.repeat(barWidth - filled)}`;
    const text = `${trialText} ${bar} ${detail} ${label}`;
    stream.write(`\r${text.slice(0, width()).padEnd(width())}`);
  };
  return {
    trial(l, index, total) {
      label = l;
      trialText = `[${index + 1}/${total}]`;
      draw(0, '');
    },
    epoch(phase, epoch, epochs) {
      draw(epoch / epochs, `${phase} ${epoch}/${epochs}`);
    },
    done(line) {
      if (tty) stream.write(`\r${' '.repeat(width())}\r`);
      stream.write(`${line}\n`);
    },
    close() {
      if (tty) stream.write(`\r${' '.repeat(width())}\r`);
    },
  };
}

/**
 * `progress` with every call guarded: a display that throws warns once and
 * goes quiet, so it can never fail the trial it reports on.
 */
export function safeProgress(
  progress: Progress,
  warn: (message: string) => void = (m) => process.stderr.write(`warning: ${m}\n`),
): Progress {
  let warned = false;
  const guard =
    <A extends unknown[]>(f: (...args: A) => void) =>
    (...args: A) => {
      try {
        f.apply(progress, args);
      } catch (err) {
        if (!warned) warn(`progress display failed: ${(err as Error).message}`);
        warned = true;
      }
    };
  return {
    trial: guard(progress.trial),
    epoch: guard(progress.epoch),
    done: guard(progress.done),
    close: guard(progress.close),
  };
}
