/* The display tools of `ignition mcp` (docs/mcp.md, "Display tools"): screenshot, type, key,
 * click and resize on a sandbox with a display, each one command on the sandbox VM's control
 * socket (src/core/control.h).  A screenshot is written by the VM into the sandbox directory,
 * read back, removed, and returned as MCP image content (base64 PNG). */
#ifndef IGNITION_MCP_GUI_H
#define IGNITION_MCP_GUI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Largest PNG the screenshot tool returns (a 3840x2160 frame of noise is ~25 MiB). */
#define MCP_GUI_PNG_MAX (64u << 20)
/* How long a display command may take on the VM's side (a screenshot of the largest mode). */
#define MCP_GUI_TIMEOUT_MS 30000

/* Whether `name` is one of the display tools. */
bool mcp_gui_is_tool(const char *name);
/* Append the display tools ({name, description, inputSchema}) to the tools/list array.
 * 0 or -ENOMEM. */
int mcp_gui_list(json_t *tools) __attribute__((warn_unused_result));
/* Check the arguments of display tool `name` (all but sandbox_id) and build the control command
 * it sends (*cmd, a new reference; a screenshot's "path" is filled in by mcp_gui_call).  0, or
 * -EINVAL with a one-line reason in err[n] (the tool's error text). */
int mcp_gui_command(const char *name, json_t *args, json_t **cmd, char *err, size_t n)
	__attribute__((warn_unused_result));
/* Run display tool `name` with `args` on the sandbox `id` whose directory (with its control
 * socket) is `dir`: the MCP tool result (content, isError, structuredContent), or NULL when
 * out of memory. */
json_t *mcp_gui_call(const char *name, json_t *args, const char *id, const char *dir);

#endif
