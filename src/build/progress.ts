/**
 * The two forms of build output. `plain` prints every event as a line (`#5 [stage] COPY …`,
 * `#5 CACHED`, `#5 MISS: why`, output lines, `#5 DONE 1.2s`), for logs. `tty` keeps one
 * line per step and redraws it in place: the step's text, then `CACHED` or its time, with
 * the reason for a miss on the line below.
 */

/** Receives the builder's plain lines and writes them in the chosen form. */
export type ProgressWriter = (line: string) => void;

/** One line per event. */
export function plainProgress(write: (s: string) => void): ProgressWriter {
  return (line) => write(`${line}\n`);
}

const CLEAR = '\r\x1b[2K';

/** The step line redrawn in place as its state changes. */
export function ttyProgress(write: (s: string) => void): ProgressWriter {
  let current: string | undefined;
  let started = 0;
  let timer: NodeJS.Timeout | undefined;
  const redraw = (suffix: string): void => {
    if (current !== undefined) write(`${CLEAR}${current}  ${suffix}`);
  };
  const stop = (): void => {
    if (timer) clearInterval(timer);
    timer = undefined;
  };
  return (line) => {
    const m = /^#(\d+) (.*)$/s.exec(line);
    const rest = m?.[2] ?? line;
    if (m && rest.startsWith('[')) {
      stop();
      if (current !== undefined) write('\n');
      current = line;
      started = Date.now();
      redraw('…');
      timer = setInterval(() => redraw(`${((Date.now() - started) / 1000).toFixed(1)}s`), 100);
      timer.unref();
      return;
    }
    if (rest === 'CACHED') {
      stop();
      redraw('CACHED\n');
      current = undefined;
      return;
    }
    if (rest.startsWith('MISS: ')) {
      write(`${CLEAR}${current ?? ''}\n    ↳ ${rest.slice(6)}\n`);
      current = `    #${m?.[1] ?? ''} running`;
      redraw('…');
      return;
    }
    if (rest.startsWith('DONE ')) {
      stop();
      redraw(`${rest.slice(5)}\n`);
      current = undefined;
      return;
    }
    // Output of a RUN, or a warning: above the step line, which is drawn again below it.
    write(`${CLEAR}${line}\n`);
    redraw(`${((Date.now() - started) / 1000).toFixed(1)}s`);
  };
}
