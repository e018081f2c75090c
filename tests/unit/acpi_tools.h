/* ACPICA's command-line tools (iasl, acpiexec; Debian acpica-tools) for the table tests: run in
 * a scratch directory, any problem they report fails the test. */
#ifndef IGNITION_TESTS_ACPI_TOOLS_H
#define IGNITION_TESTS_ACPI_TOOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Is `tool` on the PATH? */
bool acpi_tool_have(const char *tool);
/* dir/name := p[0..n). */
void acpi_tool_write(const char *dir, const char *name, const uint8_t *p, size_t n);
/* dir/name, NUL-terminated (malloc'ed); its size in *size if size. */
char *acpi_tool_read(const char *dir, const char *name, size_t *size);
/* Run `tool args` in dir, capturing its output (malloc'ed); fail on a non-zero exit or any
 * line that reports a problem (iasl's errors, warnings and remarks, the ACPICA interpreter's
 * "ACPI Error/Warning/Exception"), except iasl remark `allowed_remark` (0: none). */
char *acpi_tool_run(const char *dir, const char *tool, const char *args, int allowed_remark);
/* Fail unless `what` is in `text` (read from `file`). */
void acpi_tool_expect(const char *text, const char *what, const char *file);

#endif
