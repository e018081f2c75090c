/* ACPICA tools for the table tests (acpi_tools.h). */
#include "acpi_tools.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

bool acpi_tool_have(const char *tool)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
	return system(cmd) == 0;
}

void acpi_tool_write(const char *dir, const char *name, const uint8_t *p, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

char *acpi_tool_read(const char *dir, const char *name, size_t *size)
{
	char path[512];
	char *text;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	text = calloc(1, (size_t)n + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	if (size)
		*size = (size_t)n;
	return text;
}

char *acpi_tool_run(const char *dir, const char *tool, const char *args, int allowed_remark)
{
	static const char *const bad[] = { "Error ",	   "Warning ",	     "ACPI Error",
					   "ACPI Warning", "ACPI Exception", "does not contain",
					   "Could not" };
	char cmd[1024], allowed[32], *out, *p;
	int st;

	snprintf(cmd, sizeof(cmd), "cd '%s' && %s %s >tool.log 2>&1", dir, tool, args);
	st = system(cmd);
	out = acpi_tool_read(dir, "tool.log", NULL);
	if (st != 0)
		fail_msg("%s %s: exit status %d:\n%s", tool, args, st, out);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (strstr(out, bad[i]))
			fail_msg("%s %s reported \"%s\":\n%s", tool, args, bad[i], out);
	snprintf(allowed, sizeof(allowed), "Remark   %d", allowed_remark);
	for (p = strstr(out, "Remark "); p; p = strstr(p + 1, "Remark "))
		if (!allowed_remark || strncmp(p, allowed, strlen(allowed)))
			fail_msg("%s %s made a remark:\n%s", tool, args, out);
	return out;
}

void acpi_tool_expect(const char *text, const char *what, const char *file)
{
	if (!strstr(text, what))
		fail_msg("%s: missing \"%s\" in:\n%s", file, what, text);
}
