/**
 * The last line of every file the component manages: the renderer writes it (render/toml.ts) and
 * the node script refuses content that does not end with it (remote/node-script.ts), so a
 * connection cut while a file travels on stdin can never install a truncated file.
 */
export const END_MARKER = "# containerd-node: end of file";
