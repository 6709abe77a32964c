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
  let label = '';
  let trialText = '';
  const draw = (fraction: number, detail: string) => {
    if (!tty) return;
    const width = 24;
    const filled = Math.round(fraction * width);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    const text = `${trialText} ${bar} ${detail} ${label}`;
    const cols = stream.columns ?? 100;
    stream.write(`\r${text.slice(0, cols - 1).padEnd(cols - 1)}`);
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
      if (tty) stream.write(`\r${' '.repeat((stream.columns ?? 100) - 1)}\r`);
      stream.write(`${line}\n`);
    },
    close() {
      if (tty) stream.write(`\r${' '.repeat((stream.columns ?? 100) - 1)}\r`);
    },
  };
}
