/**
 * The front door of ui/: the two interfaces that show what inspect/ reads — the terminal
 * layers explorer (`layers --tui`) and the web page (`layerfs ui`).
 */
export * from './layer-tui.js';
export * from './ui-server.js';
