/**
 * The front door of inspect/: reading an image or a container the way the teaching verbs
 * show it — the image's layer stack, a container's merged view over its writable layer,
 * its changes (diff), why a path looks as it does (explain), what each layer adds and
 * wastes (layers), and copy-on-write events as they happen (events). Nothing here writes.
 */
export * from './image-stack.js';
export * from './container-view.js';
export * from './container-diff.js';
export * from './explain.js';
export * from './layer-analysis.js';
export * from './upper-events.js';
